"""`python -m bench.blip_runtime OUT [--photos N] [--rounds R] [--dtypes float32,bfloat16]`: base
BLIP's captions and a cold-cache rerank of 20, with the vision towers run by torch and by the
admitted ONNX int8 export (`imgsearch.models.blip_vision`; the captioner's decoder int8 beside it where
admitted and repaid, `blip_decoder`), in each precision torch can run here.

Photo-like 640x480 JPEGs (`shared/peers/make_photos.py`), decoded once by the product's path;
captions: the product's `Captioner.caption` in the product's caption batches (`caption_batch_size`),
random weights, so every caption runs to the 20-token cap; rerank: `ItmScorer.vision_states` of 20
pictures plus one `score` (what a query pays when none of its 20 candidates' states is cached).
Torch and int8 alternate within every round; ratios are taken round by round. bfloat16 is measured
only where oneDNN runs bf16 instructions (elsewhere it is emulated, far slower).

`--baseline REV` times an earlier commit's captions and rerank too, in the same rounds (a child
process running that commit's code, `bench.blip_today`), and gives the ratios issue 18 asks for:
captions by the runtime `auto` takes against REV's rate, its cold rerank against REV's time.
Issue 18 was filed against 9d6888f ("today's").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from .blip_today import RERANK_K, Baseline, caption_all, cold_rerank
from .image_runtime import machine, photos

RUNTIMES = ("torch", "onnx-int8")
TODAY = "today"  # the baseline commit's column


def measure(out: Path, dtype: str, files: list[Path], rounds: int,
            baseline: str | None = None) -> dict[str, Any]:
    from imgsearch.imaging import decode
    from imgsearch.models import Models
    from imgsearch.models.blip_vision import export_folder, read_meta
    from imgsearch.models.onnx_image import read_choice
    from imgsearch.models.random_base import base_overrides, write_random_base
    from imgsearch.settings import Settings

    weights = out / "weights"
    if not (weights / "itm").exists():
        write_random_base(weights)
    models = {rt: Models(Settings(home=out / f"home-{dtype}", models="default", dtype=dtype, image_runtime=rt,
                                  **base_overrides(weights))) for rt in RUNTIMES}
    builds = {}
    for role in ("captioner", "itm"):
        t = time.perf_counter()
        # builds the export (once per index); the captioner's decoder goes int8 where the pictures
        # this process captions (every round's) repay its quantization
        getattr(models["onnx-int8"], role).vision.expect(len(files) * rounds)
        meta = read_meta(models["onnx-int8"].settings.index_dir, role)
        builds[role] = {"build_s": time.perf_counter() - t, "check": meta["variants"]["onnx-int8"]["why"],
                        "decoder": meta.get("decoder"),
                        "decoder_runs": (read_choice(export_folder(models["onnx-int8"].settings.index_dir, role))
                                         or {}).get("decoder")}
    size = int(models["torch"].captioner.processor.image_processor.size["height"])
    images = [decode(p.read_bytes(), min_side=size).image for p in files]
    batch = models["torch"].settings.caption_batch_size

    def caption(rt: str) -> float:
        t = time.perf_counter()
        caption_all(models[rt].captioner, images, batch)
        return time.perf_counter() - t

    def rerank(rt: str) -> float:
        t = time.perf_counter()
        cold_rerank(models[rt].itm, images)
        return time.perf_counter() - t

    for rt in RUNTIMES:  # warm-up: oneDNN's kernels, onnxruntime's buffers
        models[rt].captioner.caption(images[:2])
        models[rt].itm.vision_states(images[:2])
    today = Baseline(baseline, out, {"models": "default", "dtype": dtype, **base_overrides(weights)},
                     files) if baseline else None
    columns = RUNTIMES + ((TODAY,) if today else ())
    times: dict[str, dict[str, list[float]]] = {"captions": {rt: [] for rt in columns},
                                                 "rerank": {rt: [] for rt in columns}}
    try:
        for r in range(rounds):
            for rt in (columns if r % 2 == 0 else columns[::-1]):
                times["captions"][rt].append(today.time("captions") if rt == TODAY else caption(rt))
                times["rerank"][rt].append(today.time("rerank") if rt == TODAY else rerank(rt))
    finally:
        if today:
            today.close()
    n = len(images)
    auto = {role: _auto(models["onnx-int8"], role) for role in ("captioner", "itm")}
    rows: dict[str, Any] = {}
    for what, by in times.items():
        ratios = [by["torch"][i] / by["onnx-int8"][i] for i in range(rounds)]
        rows[what] = {rt: {"s": by[rt], "s_median": statistics.median(by[rt])} for rt in columns}
        rows[what]["int8_speedup"] = ratios
        if today:  # auto's runtime against the baseline, round by round: > 1 is faster
            mine = by[auto["captioner" if what == "captions" else "itm"]]
            rows[what]["speedup_vs_today"] = [by[TODAY][i] / mine[i] for i in range(rounds)]
        if what == "captions":
            for rt in columns:
                rows[what][rt]["img_s_median"] = n / rows[what][rt]["s_median"]
    return {"dtype": dtype, "photos": n, "rounds": rounds, "builds": builds, "results": rows,
            "auto_would_take": auto, "baseline": today.commit if today else None}


def _auto(models: Any, role: str) -> str:
    from imgsearch.models.blip_vision import choose, read_meta

    return choose(read_meta(models.settings.index_dir, role), "auto", models.runtime)[0]


def _against_today(p: dict[str, Any]) -> list[str]:
    """The targets' table: auto's runtime against the baseline commit, ratios round by round."""
    cap, rr, auto = p["results"]["captions"], p["results"]["rerank"], p["auto_would_take"]
    up = statistics.median(cap["speedup_vs_today"])
    lo, hi = min(cap["speedup_vs_today"]), max(cap["speedup_vs_today"])
    share = [1 / r for r in rr["speedup_vs_today"]]  # the rerank's time as a share of today's
    mid, spread = statistics.median(share), f"{min(share):.2f}–{max(share):.2f}"
    captions = (f"| captions, {p['photos']} photos (img/s) | {cap[TODAY]['img_s_median']:.2f} | "
                f"{cap[auto['captioner']]['img_s_median']:.2f} | {up:.2f}× ({lo:.2f}–{hi:.2f}) | "
                f"≥ 2× {'✅' if up >= 2 else '❌'} |")
    rerank = (f"| rerank of 20, cold cache (s) | {rr[TODAY]['s_median']:.2f} | "
              f"{rr[auto['itm']]['s_median']:.2f} | {mid:.2f}× the time ({spread}) | "
              f"≤ 0.5× {'✅' if mid <= 0.5 else '❌'} |")
    title = f"Against {p['baseline']} (\"today's\"), {p['dtype']}, the runtime auto takes, round by round:"
    return [title, "",
            "| figure | today's | now (auto) | ratio (median, min–max) | target |", "|---|---|---|---|---|",
            captions, rerank, ""]


def to_markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = [(f"CPU: {m['cpu']}, {m['cpus']} CPUs, VNNI: {', '.join(m['vnni']) or 'none'}, bf16: "
              f"{', '.join(m['bf16']) or 'none'} (fast bf16: {'yes' if m['fast_bf16'] else 'no'}); torch "
              f"{m['torch']}, onnxruntime {m['onnxruntime']}; load average at start {m['load_avg'][0]:.2f}, "
              f"at the end {result['load_avg_end'][0]:.2f}."), "",
             "| torch precision | figure | torch | int8 vision | int8 speed-up (median, min–max) | auto takes |",
             "|---|---|---|---|---|---|"]
    for p in result["runs"]:
        cap, rr = p["results"]["captions"], p["results"]["rerank"]
        for label, row, role, value in (
                (f"captions, {p['photos']} photos (img/s)", cap, "captioner",
                 lambda rt: f"{cap[rt]['img_s_median']:.2f}"),
                ("rerank of 20, cold cache (s)", rr, "itm", lambda rt: f"{rr[rt]['s_median']:.2f}")):
            up = row["int8_speedup"]
            lines.append(f"| {p['dtype']} | {label} | {value('torch')} | {value('onnx-int8')} | "
                         f"{statistics.median(up):.2f} ({min(up):.2f}–{max(up):.2f}) | {p['auto_would_take'][role]} |")
    lines.append("")
    for p in result["runs"]:
        if p.get("baseline"):
            lines += _against_today(p)
    for p in result["runs"]:
        for role, b in p["builds"].items():
            lines.append(f"- {p['dtype']}, {role}: export, quantization and check {b['build_s']:.0f} s; {b['check']}")
            if b.get("decoder_runs"):
                d = b["decoder"]
                lines.append(f"- {p['dtype']}, {role}'s decoder: {b['decoder_runs']}; at build {d['pictures']} "
                             f"pictures decoded in {d['fp32_s']} s fp32, {d['int8_s']} s int8, quantization {d['quantize_s']} s")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--photos", type=int, default=32, help=f"at least {RERANK_K}: the rerank takes that many")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dtypes", default=None, help="default: float32, and bfloat16 where oneDNN runs it natively")
    ap.add_argument("--baseline", default=None, metavar="REV",
                    help="also time this commit's BLIP (issue 18's \"today's\": 9d6888f) in the same rounds")
    args = ap.parse_args(argv)
    if args.photos < RERANK_K:
        ap.error(f"--photos {args.photos}: the rerank of {RERANK_K} needs at least {RERANK_K} photos")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from imgsearch.models.runtime import onednn_has_bf16

    dtypes = args.dtypes.split(",") if args.dtypes else ["float32"] + (["bfloat16"] if onednn_has_bf16() else [])
    args.out.mkdir(parents=True, exist_ok=True)
    files = photos(args.out / "photos-640x480", args.photos)
    result: dict[str, Any] = {"machine": machine(), "runs": []}
    for dtype in dtypes:
        result["runs"].append(measure(args.out, dtype, files, args.rounds, args.baseline))
        print(json.dumps(result["runs"][-1], default=str)[:1500], flush=True)
    result["load_avg_end"] = os.getloadavg()
    (args.out / "blip_runtime.json").write_text(json.dumps(result, indent=1))
    (args.out / "blip_runtime.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
