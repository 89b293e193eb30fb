"""`python -m imgsearch.evaluation.dupes OUT_DIR`: how well `imgsearch dupes` finds copies of one
photo and leaves apart different photos of one scene, through the product (the collection of
`dupes_collection` indexed with the given models, then `LocalIndex.dupes`).

Pair precision and recall: every pair of pictures that share a found group, against every pair
of one true group (an original and its copies). Measured at the default threshold and a sweep of
others; recall is also given per kind of copy (original with that copy). Writes dupes.json and
dupes.md into OUT_DIR and prints the markdown."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .dupes_collection import VARIANTS, DupesCollection, build_dupes_collection

SWEEP = (0.8, 0.85, 0.9, 0.95)


def found_pairs(report: dict[str, Any]) -> set[frozenset[str]]:
    """Every pair of file names sharing a found group."""
    pairs: set[frozenset[str]] = set()
    for group in report["groups"]:
        names = [m["name"] for m in group["members"]]
        pairs |= {frozenset((a, b)) for i, a in enumerate(names) for b in names[i + 1:]}
    return pairs


def score(collection: DupesCollection, report: dict[str, Any]) -> dict[str, Any]:
    """Pair precision / recall, recall per kind of copy, and whether each group keeps its original."""
    truth, found = collection.true_pairs(), found_pairs(report)
    right = truth & found
    per_kind: dict[str, list[int]] = {k: [0, 0] for k in VARIANTS}
    for name, group in collection.groups.items():
        kind = next((k for k in VARIANTS if name.endswith(f"-{k}" + name[name.rfind("."):])), None)
        if kind is not None:
            per_kind[kind][1] += 1
            per_kind[kind][0] += frozenset((name, group)) in found
    kept_original = sum(g["members"][0]["name"] == collection.groups[g["members"][0]["name"]]
                        for g in report["groups"])
    return {"true_pairs": len(truth), "found_pairs": len(found), "right_pairs": len(right),
            "precision": len(right) / len(found) if found else 1.0,
            "recall": len(right) / len(truth) if truth else 1.0,
            "recall_by_copy": {k: (f / n if n else None) for k, (f, n) in per_kind.items()},
            "groups": len(report["groups"]), "groups_keeping_the_original": kept_original,
            "compared": report["compared"], "candidates": report["candidates"],
            "wrong_pairs": sorted(sorted(p) for p in found - truth)[:10]}


def evaluate(workdir: Path, *, originals: int = 60, seed: int = 4242, copies: int = 3, models: str = "tiny",
             thresholds: Sequence[float] = SWEEP) -> dict[str, Any]:
    """Build the collection in `workdir`, index it, and score the groups at each threshold."""
    from imgsearch.indexer import run_index
    from imgsearch.library.local import LocalIndex
    from imgsearch.searcher.dupes import DEFAULT_THRESHOLD
    from imgsearch.settings import Settings

    collection = build_dupes_collection(workdir / "pictures", originals, seed, copies)
    settings = Settings(home=workdir / "home", models=models, batch_size=16, ocr=False)
    run_index(settings, [collection.folder], captions=False, texts=False)
    rows: dict[str, Any] = {}
    with LocalIndex(settings) as idx:
        for t in sorted({*thresholds, DEFAULT_THRESHOLD}):
            start = time.perf_counter()
            report = idx.dupes(threshold=t)
            rows[f"{t:g}"] = {"threshold": t, "seconds": time.perf_counter() - start, **score(collection, report)}
    return {"pictures": len(collection.groups), "originals": originals, "copies_each": copies, "seed": seed,
            "models": models, "default_threshold": DEFAULT_THRESHOLD, "rows": rows}


def markdown(result: dict[str, Any]) -> str:
    title = (f"# Duplicate groups: {result['pictures']} pictures ({result['originals']} originals, "
             f"{result['copies_each']} copies each, hard negatives; seed {result['seed']}, models "
             f"{result['models']})")
    lines = [title, "",
             "| threshold | pair precision | pair recall | groups | original kept | candidates | compared | s |",
             "|---|---|---|---|---|---|---|---|"]
    for key, r in result["rows"].items():
        mark = " (default)" if r["threshold"] == result["default_threshold"] else ""
        lines.append(f"| {key}{mark} | {r['precision']:.3f} | {r['recall']:.3f} | {r['groups']} | "
                     f"{r['groups_keeping_the_original']} | {r['candidates']} | {r['compared']} | "
                     f"{r['seconds']:.1f} |")
    default = result["rows"][f"{result['default_threshold']:g}"]
    lines += ["", "Recall per kind of copy (original with that copy), at the default threshold:", ""]
    lines += [f"- {k}: {v:.3f}" if v is not None else f"- {k}: none made"
              for k, v in default["recall_by_copy"].items()]
    if default["wrong_pairs"]:
        lines += ["", "Wrong pairs at the default: " + "; ".join(" + ".join(p) for p in default["wrong_pairs"])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imgsearch.evaluation.dupes", description=__doc__)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--originals", type=int, default=60)
    p.add_argument("--copies", type=int, default=3, help="copies of each original (kinds in turn)")
    p.add_argument("--seed", type=int, default=4242, help="collection seed (training uses 1234..1250)")
    p.add_argument("--models", default="tiny")
    p.add_argument("--thresholds", default=",".join(f"{t:g}" for t in SWEEP))
    p.add_argument("--workdir", type=Path, default=None, help="keep pictures and index here (must be new)")
    args = p.parse_args(argv)
    thresholds = [float(t) for t in args.thresholds.split(",") if t]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        result = evaluate(work, originals=args.originals, seed=args.seed, copies=args.copies,
                          models=args.models, thresholds=thresholds)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "dupes.json").write_text(json.dumps(result, indent=1))
    text = markdown(result)
    (args.out_dir / "dupes.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
