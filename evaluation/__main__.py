"""`python -m imgsearch.evaluation OUT_DIR`: measure search quality, print the markdown report
and write eval.json / eval.md into OUT_DIR. Pictures and indexes go to a temporary folder
unless --workdir keeps them (it must not hold an earlier run)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

SLOW_BF16_QUERIES = 40


def _parser() -> argparse.ArgumentParser:
    from imgsearch.searcher.fusion import FUSIONS
    from imgsearch.shapes.render import CLEAR_AXIS_RATIO

    p = argparse.ArgumentParser(prog="python -m imgsearch.evaluation", description=__doc__)
    p.add_argument("out_dir", type=Path, help="where eval.json and eval.md are written")
    p.add_argument("--n", type=int, default=400, help="pictures in the held-out collection")
    p.add_argument("--seed", type=int, default=2026, help="collection seed (training uses 1234..1250)")
    p.add_argument("--models", default="tiny", help="model profile")
    p.add_argument("--rerank-k", type=int, default=20,
                   help="CLIP hits ITM reranks; also the ranked list's length")
    p.add_argument("--fusion", action="append", choices=FUSIONS,
                   help="fusions to measure (default: all)")
    p.add_argument("--dtype", default="float32",
                   help="the main run's weights (the bf16 comparison's reference)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--no-bf16", action="store_true", help="skip the bf16 comparison")
    p.add_argument("--bf16-queries", type=int, default=None,
                   help="compare bf16 on this many queries only (default: all, but "
                        f"{SLOW_BF16_QUERIES} on a CPU without AMX / AVX512-BF16, where bf16 crawls)")
    p.add_argument("--thresholds", default="",
                   help="extra --min-match values to measure the cutoff at, comma-separated (the "
                        "settings' default, IMGSEARCH_MIN_MATCH, is always measured)")
    p.add_argument("--workdir", type=Path, default=None, help="keep pictures and indexes here")
    p.add_argument("--min-axis-ratio", type=float, default=CLEAR_AXIS_RATIO,
                   help="two objects' larger gap at least this times the smaller (1.0: near-diagonal "
                        "pairs too, every placement the spec allows)")
    return p


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before any import of the hub libraries reads it
    args = _parser().parse_args(argv)
    from imgsearch.searcher.fusion import FUSIONS
    from imgsearch.settings import Settings

    from .run import evaluate, to_markdown, write_reports

    settings = Settings(models=args.models, dtype=args.dtype, device=args.device)
    bf16_queries = args.bf16_queries
    if bf16_queries is None and not args.no_bf16:
        from imgsearch.models.runtime import cpu_has_fast_bf16, pick_runtime

        if pick_runtime(args.device).device.type == "cpu" and not cpu_has_fast_bf16():
            bf16_queries = SLOW_BF16_QUERIES
    with tempfile.TemporaryDirectory(prefix="imgsearch-eval-") as tmp:
        result = evaluate(
            settings, args.workdir or Path(tmp), args.n, args.seed, rerank_k=args.rerank_k,
            fusions=tuple(args.fusion or FUSIONS), compare_dtypes=not args.no_bf16,
            bf16_queries=bf16_queries, min_axis_ratio=args.min_axis_ratio,
            thresholds=[float(t) for t in args.thresholds.split(",") if t.strip()],
        )
    json_path, md_path = write_reports(result, args.out_dir)
    print(to_markdown(result))
    print(f"written: {json_path}, {md_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
