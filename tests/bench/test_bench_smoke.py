"""The benchmark harness end to end in smoke mode: one command writes both reports, and every
section holds real (finite, positive) numbers, not placeholders."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def _number(summary: Any) -> float:
    """The median of a harness summary, checked to be a real measurement."""
    assert isinstance(summary, dict) and summary["n"] >= 1, summary
    value = summary["median"]
    assert isinstance(value, float) and math.isfinite(value) and value >= 0, summary
    assert summary["min"] <= value <= summary["max"]
    return value


def test_smoke_run_writes_reports_with_numbers_in_every_section(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
    env.update(HF_HUB_OFFLINE="1", IMGSEARCH_HOME=str(tmp_path / "home"))
    # speed belongs in the benchmark's figures, not in this test: the timeout only stops a hang
    proc = subprocess.run([sys.executable, "-m", "bench", str(out), "--smoke"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]

    results = json.loads((out / "bench.json").read_text())
    md = (out / "bench.md").read_text()
    assert results["meta"]["mode"] == "smoke" and not results["errors"]
    assert results["machine"]["cpu"] and results["torch_facts"]["bf16_fast"] in (True, False)

    assert results["photos"] and all(p["files"] == p["count"] and p["mean_mb"] > 0 for p in results["photos"])
    (row,) = results["indexing"]
    for key in ("e2e_img_s", "vectors_img_s", "captions_img_s", "baseline_img_s", "vectors_vs_baseline",
                "peak_rss_mb", "baseline_peak_rss_mb", "text_img_s", "tagger_load_s"):
        assert _number(row[key]) > 0, key

    (queries,) = results["queries"]
    assert queries["rerank_k"] == 20
    assert set(queries["ops"]) == {"text_encode", "vector_search", "query_no_rerank",
                                   "query_no_rerank_hybrid", "query_rerank_warm", "query_rerank_cold",
                                   "query_cutoff_cold", "query_cutoff_deepest_cold"}
    for op, figures in queries["ops"].items():
        assert 0 < _number(figures["p50_ms"]) <= _number(figures["p95_ms"]), op
    _check_cutoff(queries)
    assert {c["via"] for c in results["cli"]} == {"direct", "service"}
    for cli in results["cli"]:
        assert _number(cli["wall_s"]) > 0 and _number(cli["peak_rss_mb"]) > 0

    _check_phases(results, md)

    backends = {(v["backend"], v["n"]) for v in results["vectors"]}
    assert {("numpy", 1000), ("edge", 1000), ("edge+optimize", 1000), ("qdrant-client", 200)} <= backends
    for v in results["vectors"]:
        for key in ("upsert_s", "p50_ms", "p95_ms", "open_s", "peak_rss_mb", "disk_mb", "p50_vs_numpy"):
            _number(v[key])
        assert _number(v["recall_at_20"]) > 0.99  # tiny stores are searched exactly
    filtered = {(v["backend"], v["n"]): v["filtered"] for v in results["vectors"] if "filtered" in v}
    assert {("numpy", 1000), ("edge", 1000), ("edge+optimize", 1000)} <= set(filtered)
    assert not any(b == "qdrant-client" for b, _ in filtered)  # local mode filters in Python: not measured
    for (backend, n), block in filtered.items():
        assert set(block["filters"]) == {"folder", "date", "camera"}
        for name, f in block["filters"].items():
            assert 0 < _number(f["p50_ms"]) <= _number(f["p95_ms"])
            assert _number(f["filtered_vs_unfiltered"]) > 0
            assert _number(f["recall_at_20"]) > 0.99, (backend, n, name)  # exact at these sizes
        assert _number(block["worst_filtered_vs_unfiltered"]) > 0

    assert {t["status"] for t in results["targets"]} == {"not measured"}  # smoke never judges targets
    assert any(t["target"].startswith("Query with the default cutoff") for t in results["targets"])
    for heading in ("Targets of the issue", "Machine", "Indexing", "Queries", "Vector store scale",
                    "Filtered search"):
        assert f"## {heading}" in md
    assert "| edge+optimize | uniform | 1,000 | camera: one camera, ~10 % |" in md
    assert results["machine"]["cpu"] in md
    assert "| tiny (bundled) | smoke (320×240" in md and "| edge | uniform | 1,000 |" in md
    for row in ("| whole query, no rerank, hybrid (CLIP + full text) |",
                "| whole query + ITM rerank (vector, no cutoff), cold cache |",
                "| whole query, default cutoff (hybrid, min_match), cold cache |",
                "| whole query, default cutoff, deepest path (simulated matches), cold cache |",
                "| default cutoff (min_match 0.5, hybrid) / rerank of 20 (vector, no cutoff), cold cache, "
                "p50s |",
                "| pictures ITM scored per cutoff query | 20 (queries: 20 pictures × 2); the deepest it can "
                "go: 200, in this index of 20: 20 |",
                "| hybrid / vector, no rerank, p50s (the full-text index's overhead) |"):
        assert row in md, row


def _check_phases(results: dict[str, Any], md: str) -> None:
    """The text phase on each kind of picture (with text, the same clutter without, shapes) and the
    tag phase's three costs, for the tiny vocabulary and the default profile's ~285 classes."""
    (ocr,) = results["ocr"]
    assert set(ocr["kinds"]) == {"text", "no-text", "shapes"}
    for kind, k in ocr["kinds"].items():
        assert k["pictures"] == k["files"] == 3, kind
        for key in ("phase_pics_s", "reader_pics_s", "phase_ms", "reader_ms"):
            assert _number(k[key]) > 0, (kind, key)
    assert ocr["kinds"]["text"]["found"][0] >= 1  # the pictures with text do hold text
    assert set(ocr["vs_text"]) == {"no-text", "shapes"}
    for kind, r in ocr["vs_text"].items():
        assert _number(r["phase"]) > 0 and _number(r["reader"]) > 0, kind
    assert any(t["target"].startswith("Text phase (OCR)") for t in results["targets"])

    tags = {(t["profile"], t["vocabulary"]): t for t in results["tags"]}
    assert set(tags) == {("tiny", "own"), ("tiny", "default.txt")}
    assert tags[("tiny", "own")]["classes"] < 200 <= tags[("tiny", "default.txt")]["classes"]
    for t in tags.values():
        assert t["pictures"] == 30 and t["vectors"] == 200 and t["dim"] > 0
        for key in ("tagger_load_s", "tag_ms_per_1000", "phase_s_per_1000", "phase_stores_ms_per_1000"):
            assert _number(t[key]) > 0, key

    for heading in ("Words from pixels (text phase, OCR)", "Zero-shot tags"):
        assert f"## {heading}" in md
    assert "| without text (the same clutter, no words) / with text |" in md
    assert "| tiny (bundled) | default.txt: " in md


def _check_cutoff(queries: dict[str, Any]) -> None:
    """The cutoff's rows: its cost as a ratio to today's rerank of 20, the full-text index's
    overhead as a ratio, and how deep each rerank went, counted per query (no speed is judged)."""
    from imgsearch.settings import Settings

    c = queries["cutoff"]
    assert c["min_match"] == Settings.model_fields["min_match"].default > 0  # the product's default cutoff
    assert c["mode"] == "hybrid" and c["product_max_depth"] == 200
    assert c["max_depth"] == min(queries["indexed"], 200) == 20  # the smoke index holds 20 photos
    for key in ("cutoff_vs_rerank_cold", "hybrid_vs_vector_no_rerank", "forced_vs_rerank_cold",
                "forced_vs_rerank_cold_projected", "ms_per_picture_cold", "deepest_vs_rerank_cold_projected"):
        assert _number(c[key]) > 0, key
    # every cold query scored at least one batch and never past the index; today's rerank: exactly 20
    assert 20 <= _number(c["depth"]) and c["depth"]["max"] <= c["max_depth"]
    assert c["rerank_depth"]["runs"] == [20.0] * queries["ops"]["query_rerank_cold"]["calls_per_run"]
    assert c["forced_depth"]["runs"] == [float(c["max_depth"])]  # made to go as deep as it can
    cutoff_calls = queries["ops"]["query_cutoff_cold"]["calls_per_run"]
    assert sum(c["depth_counts"].values()) == c["depth"]["n"] == cutoff_calls
    assert _number(c["computed"]) <= _number(c["depth"])  # cold cache: a vision pass for each, at most
    assert c["itm_at_or_above_cutoff"] is not None and 0 <= c["itm_at_or_above_cutoff"] <= 1
    (run,) = queries["process_runs"]
    for op in ("query_rerank_cold", "query_cutoff_cold", "query_cutoff_deepest_cold"):
        assert all(len(q["probabilities"]) == q["scored"] for q in run["depth"][op]), op


def test_skipped_sections_are_not_run_and_the_report_says_so(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGSEARCH_")}
    env.update(HF_HUB_OFFLINE="1", IMGSEARCH_HOME=str(tmp_path / "home"))
    skip = ["vectors", "queries", "ocr", "tags"]
    proc = subprocess.run([sys.executable, "-m", "bench", str(out), "--smoke", *(f"--skip={s}" for s in skip)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads((out / "bench.json").read_text())
    assert results["plan"]["skip"] == skip
    assert len(results["indexing"]) == 1
    assert not any(results[k] for k in ("queries", "cli", "vectors", "ocr", "tags"))
    assert "Not run this time (`--skip`): vectors, queries, ocr, tags" in (out / "bench.md").read_text()
