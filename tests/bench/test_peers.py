"""The rclip side-by-side harness (bench/peers.py) without rclip: its parsing of bench_rclip.py's
output, the FLOPs behind the physical bound, the round-by-round ratios and target verdicts, and
the report section, all on recorded inputs. rclip's setup (../shared/peers/rclip/setup.sh) installs
it from the package registry and exports its model with torch and open_clip in a second
virtualenv: minutes and the network, so CI does not run it. One test runs the real peer when it
is already set up (RCLIP_PEER_ROOT or ~/.cache/imgsearch-peers/rclip), to catch a change in the
scripts' output; it is skipped elsewhere."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from bench.peers import (
    ARCHS,
    PEERS_DIR,
    PEER_TARGETS,
    QUERY,
    Rclip,
    image_flops,
    parse_keyvals,
    peer_plan,
    rclip_root,
    side_by_side_section,
    summarize_side_by_side,
    text_flops,
)

# what bench_rclip.py printed for `index` on 200 photos at 640×480 (rclip 3.3.0, this repository's
# 2-core AMD EPYC), and for `query --warm 20`
RECORDED_INDEX = """import_s=0.741
index_s=23.512
images_indexed=200
images_per_s=8.506
first_query_s=1.2041
results=10 top=img_00017.jpg
"""
RECORDED_QUERY = """import_s=0.702
init_s=0.088
first_query_s=1.1530
warm_query_median_s=0.0712
results=10 top=img_00017.jpg
"""


def test_parses_what_bench_rclip_prints() -> None:
    kv = parse_keyvals(RECORDED_INDEX)
    assert kv["images_per_s"] == pytest.approx(8.506) and kv["images_indexed"] == 200
    assert kv["first_query_s"] == pytest.approx(1.2041)
    assert kv["results"] == 10 and kv["top"] == "img_00017.jpg"  # two pairs on one line
    assert parse_keyvals(RECORDED_QUERY)["warm_query_median_s"] == pytest.approx(0.0712)
    assert parse_keyvals("visual session load_s=0.84")["load_s"] == pytest.approx(0.84)  # decode_floor.py


def test_flops_per_picture_match_the_published_vit_b_32_figure() -> None:
    arch = ARCHS["ViT-B-32-256"]
    # ViT-B/32 at 224 px is quoted at 4.4 G multiply-adds (8.8 GFLOP)
    at_224 = image_flops(type(arch)(**{**asdict(arch), "image_size": 224}))
    assert at_224 / 1e9 == pytest.approx(8.8, rel=0.02)
    assert image_flops(arch) / 1e9 == pytest.approx(11.5, rel=0.02)  # 65 tokens at 256 px
    assert text_flops(arch, 77) > 8 * text_flops(arch, 9)  # stopping at the end-of-text token pays


def _round(r: int, rclip_rate: float, img_rate: float, rclip_wall: float, img_wall: float, rclip_warm: float,
           img_warm: float, cold: list[tuple[float, float]]) -> dict[str, Any]:
    def sets(scale: float) -> dict[str, Any]:
        n = 200 if scale == 1 else 40
        index_s = n / rclip_rate * scale + 1.0
        rclip = {**parse_keyvals(RECORDED_INDEX), "images_indexed": float(n), "index_s": index_s,
                 "images_per_s": n / index_s, "index_wall_s": rclip_wall * scale, "peak_rss_mb": 900.0}
        return {"rclip_index": rclip, "rclip_session_load_s": 1.0,
                "imgsearch_phase": {"img_s": img_rate / scale, "clip_load_s": 4.0, "runtime": "cpu/float32",
                                    "clip": {"runtime": "cpu/float32"}},
                "imgsearch_index": {"index_wall_s": img_wall * scale, "peak_rss_mb": 1500.0},
                "rclip_reindex": {"index_wall_s": 0.6 * scale},
                "imgsearch_reindex": {"index_wall_s": 1.2 + r}}
    return {"round": r, "load_average": 2.0, "bare_start_s": 0.02,
            "gemm": {"torch_fp32": 100.0, "ort_fp32": 110.0, "ort_int8": 200.0},
            "sets": {"640x480": sets(1), "12mp": sets(2)},
            "warm": {"rclip": {**parse_keyvals(RECORDED_QUERY), "warm_query_median_s": rclip_warm},
                     "imgsearch": {"hybrid_p50_s": img_warm, "vector_p50_s": img_warm / 2}},
            "cold": {"rclip": [{"wall_s": c, "peak_rss_mb": 400.0} for c, _ in cold],
                     "imgsearch": [{"wall_s": i, "peak_rss_mb": 200.0} for _, i in cold]}}


def _raw(smoke: bool = False) -> dict[str, Any]:
    plan = peer_plan(smoke, runs=3)
    return {
        "plan": asdict(plan), "profile": "tiny" if smoke else "default-random", "query": QUERY,
        "rclip_setup": {"root": "/x", "versions": {"rclip": "3.3.0", "onnxruntime": "1.32.0"},
                        "model": "ViT-B-32-256-datacomp_s34b_b86k"},
        "photos": [{**asdict(p), "folder": "/p", "mean_mb": 0.1} for p in plan.photo_sets],
        "load_average_at_start": [2.0, 2.0, 2.0], "load_average_at_end": [2.5, 2.0, 2.0],
        "imgsearch_status": {"models": {"clip_model": "ViT-B-32-256@abc"}},
        # rounds in which imgsearch's CLIP phase is 3×, 2.5× and 1× rclip's, and so on
        "rounds": [_round(0, 10.0, 30.0, 30.0, 15.0, 0.08, 0.03, [(2.0, 1.5), (2.0, 1.9)]),
                   _round(1, 10.0, 25.0, 30.0, 25.0, 0.08, 0.05, [(2.0, 2.2)]),
                   _round(2, 10.0, 10.0, 30.0, 10.0, 0.08, 0.02, [(2.0, 1.0)])],
    }


def test_ratios_are_taken_round_by_round_and_judged_on_their_median() -> None:
    block = summarize_side_by_side(_raw())
    f = block["figures"]
    # rclip's session creation (1 s) is taken out of its index_s: 200 / 20 s = 10 img/s
    assert f["clip_640x480"]["rclip"]["median"] == pytest.approx(10.0)
    assert f["clip_640x480"]["ratio"]["runs"] == pytest.approx([3.0, 2.5, 1.0])
    assert f["clip_640x480"]["ratio"]["median"] == pytest.approx(2.5)
    # with the session creation inside rclip's phase, as rclip reports it, rclip looks slower
    assert f["clip_640x480"]["ratio_to_rclip_as_reported"]["median"] == pytest.approx(2.5 * 21 / 20)
    assert f["index_640x480"]["ratio"]["runs"] == pytest.approx([2.0, 1.2, 3.0])  # rclip s / imgsearch s
    assert f["warm_query"]["ratio"]["median"] == pytest.approx(0.375)  # imgsearch s / rclip s
    assert f["cold_query"]["ratio"]["runs"] == pytest.approx([0.75, 0.95, 1.1, 0.5])  # pair by pair
    assert f["reindex_640x480"]["ratio"]["runs"] == pytest.approx([0.5, 0.6 / 2.2, 0.6 / 3.2])
    assert f["reindex_12mp"]["ratio"]["median"] == pytest.approx(1.2 / 2.2)
    status = {t["key"]: t["status"] for t in block["targets"]}
    assert status == {"clip_640x480": "reached", "clip_12mp": "missed", "index_640x480": "reached",
                      "index_12mp": "reached", "warm_query": "reached", "cold_query": "reached",
                      "reindex_640x480": "no target", "reindex_12mp": "no target"}
    assert {t["key"] for t in block["targets"]} == {t.key for t in PEER_TARGETS}
    assert block["imgsearch_runtime"]["runtime"] == ["cpu/float32"]

    bounds = block["bounds"]
    assert bounds["image_gflop"] == pytest.approx(11.5, rel=0.02)
    fp32 = bounds["rates"]["torch_fp32"]
    assert fp32["img_s"] == pytest.approx(100e9 / image_flops(ARCHS["ViT-B-32-256"]))
    assert fp32["ceiling_vs_rclip_640x480"] == pytest.approx(fp32["img_s"] / 10.0)
    assert bounds["rates"]["ort_int8"]["img_s"] == pytest.approx(2 * fp32["img_s"])
    assert fp32["index_640x480_s"] == pytest.approx(200 / fp32["img_s"])


def test_a_round_whose_rclip_phase_is_all_session_load_is_not_compared() -> None:
    raw = _raw()
    raw["rounds"][0]["sets"]["640x480"]["rclip_session_load_s"] = 1e6
    clip = summarize_side_by_side(raw)["figures"]["clip_640x480"]
    assert clip["ratio"]["runs"] == pytest.approx([2.5, 1.0]) and clip["imgsearch"]["n"] == 3


def test_smoke_judges_nothing_and_has_no_bound_for_the_tiny_models() -> None:
    block = summarize_side_by_side(_raw(smoke=True))
    assert {t["status"] for t in block["targets"]} == {"not measured"}
    assert block["bounds"] == {}
    md = "\n".join(side_by_side_section({"side_by_side": block}))
    assert "## Side by side with rclip" in md and "➖" in md and "✅" not in md


def test_report_section_shows_each_ratio_its_verdict_and_bound() -> None:
    block = summarize_side_by_side(_raw())
    md = "\n".join(side_by_side_section({"side_by_side": block}))
    rows = [line for line in md.splitlines() if line.startswith("| ") and "×" in line
            and not line.startswith("| figure")]
    assert len(rows) == len(PEER_TARGETS)
    clip = next(r for r in rows if r.startswith("| CLIP phase, 640×480"))
    assert "2.50 (1.00–3.00) ×" in clip and "✅" in clip and "img/s at fp32 torch" in clip
    assert "❌" in next(r for r in rows if r.startswith("| CLIP phase, 12 MP"))
    assert "text tower" in next(r for r in rows if r.startswith("| warm query"))
    assert "rclip 3.3.0" in md and "cpu/float32" in md and "GFLOP per picture" in md
    assert side_by_side_section({}) == []  # a run without --peers has no such section


def test_report_renders_the_section_after_the_targets() -> None:
    from bench import report

    block = summarize_side_by_side(_raw())
    results = {"meta": {"mode": "full", "started": "now", "duration_s": 1.0, "command": "python -m bench x"},
               "plan": {"notes": [], "skip": [], "isolated": True}, "errors": [], "targets": [],
               "peers": [], "side_by_side": block}
    sections = []
    for fn in (report._targets, report.side_by_side_section):
        sections += fn(results)
    md = "\n".join(sections)
    assert md.index("## Targets of the issue") < md.index("## Side by side with rclip")
    assert report.side_by_side_section is side_by_side_section


@pytest.mark.skipif(not (Rclip(rclip_root()).ready() and (PEERS_DIR / "make_photos.py").exists()),
                    reason="rclip peer not set up (../shared/peers/rclip/setup.sh), or ../shared/peers not beside "
                           "this checkout")
def test_real_rclip_index_and_query_on_three_pictures(tmp_path: Path) -> None:
    from bench.peers import PeerPhotos, ensure_peer_photos

    photos = ensure_peer_photos(tmp_path / "photos", PeerPhotos("t", 160, 120, 3, 7))
    rclip = Rclip(rclip_root())
    got = rclip.index(photos, tmp_path / "data", batch=8)
    assert got["images_indexed"] == 3 and got["index_wall_s"] > 0 and got["images_per_s"] > 0
    warm = rclip.warm(photos, tmp_path / "data", calls=2)
    assert warm["warm_query_median_s"] > 0 and got["first_query_s"] > 0
