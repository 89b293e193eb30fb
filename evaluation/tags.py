"""How right the zero-shot tags are: a held-out shapes collection (seed far from training's) is
indexed with the tag phase, and each label's precision and recall are judged against the written
scenes (`shapes.world`: a shape or colour label is right when an object has it; a background
label when the background is that). A sweep of thresholds re-scores the same stored vectors.
The issue's targets: precision ≥ 0.9 and recall ≥ 0.8 for shape and colour labels.

`python -m imgsearch.evaluation.tags OUT_DIR --n 400`"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.shapes.render import sample_scene, write_collection
from imgsearch.shapes.world import COLOURS, SHAPES, Scene

SWEEP = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)


def holds(scene: Scene, label: str) -> bool:
    if label.endswith(" background"):
        return scene.background == label.removesuffix(" background")
    return any(label in (o.shape, o.colour) for o in scene.objects)


def _judge(truth: dict[str, Scene], kept: dict[str, set[str]], labels: Sequence[str]) -> dict[str, Any]:
    per: dict[str, dict[str, float | int]] = {}
    for label in labels:
        tp = sum(label in kept[n] and holds(s, label) for n, s in truth.items())
        fp = sum(label in kept[n] and not holds(s, label) for n, s in truth.items())
        fn = sum(label not in kept[n] and holds(s, label) for n, s in truth.items())
        per[label] = {"precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
                      "tp": tp, "fp": fp, "fn": fn}
    groups = {"shape": SHAPES, "colour": COLOURS, "background": [lb for lb in labels if lb.endswith("background")]}
    pooled = {}
    for group, members in groups.items():
        tp = sum(int(per[m]["tp"]) for m in members if m in per)
        fp = sum(int(per[m]["fp"]) for m in members if m in per)
        fn = sum(int(per[m]["fn"]) for m in members if m in per)
        pooled[group] = {"precision": tp / (tp + fp) if tp + fp else 1.0, "recall": tp / (tp + fn) if tp + fn else 1.0,
                         "worst_precision": min(per[m]["precision"] for m in members if m in per),
                         "worst_recall": min(per[m]["recall"] for m in members if m in per)}
    return {"labels": per, "groups": pooled}


def evaluate_tags(home: Path, folder: Path, n: int, seed: int) -> dict[str, Any]:
    from imgsearch.library.local import LocalIndex
    from imgsearch.settings import Settings

    rng = random.Random(seed)
    truth = write_collection(folder, [sample_scene(rng) for _ in range(n)], seed)
    settings = Settings(home=home, models="tiny", ocr=False)
    with LocalIndex(settings) as idx:
        report = idx.index([folder], captions=False)
        stores = idx._open_stores()
        infos = stores.catalog.get(stores.catalog.vector_ids())
        names = {i: Path(info.path).name for i, info in infos.items()}
        kept = {names[i]: set(info.tags or {}) for i, info in infos.items()}
        tagger = idx.models.tagger
        vectors = stores.vectors.get_vectors(list(names))
    labels = tagger.vocabulary.labels
    ids = list(names)
    scores = tagger.probabilities(np.stack([vectors[i] for i in ids]))
    sweep = {}
    for threshold in SWEEP:
        swept: dict[str, set[str]] = {names[i]: set() for i in ids}
        for label, _, p in scores:
            for row in np.flatnonzero(p >= threshold):
                swept[names[ids[row]]].add(label)
        sweep[str(threshold)] = _judge(truth, swept, labels)["groups"]
    return {"pictures": len(kept), "seed": seed, "tagged": report["tagged"],
            "thresholds": sorted({s.threshold for s in tagger.vocabulary.sections}),
            "vocabulary": tagger.vocabulary.source, **_judge(truth, kept, labels), "sweep": sweep}


def to_markdown(r: dict[str, Any]) -> str:
    lines = [f"Zero-shot tags, tiny profile: {r['pictures']} held-out pictures (seed {r['seed']}), "
             f"threshold {', '.join(map(str, r['thresholds']))}.", "",
             "| labels | precision | recall | worst label's precision | worst label's recall |", "|---|---|---|---|---|"]
    for group, g in r["groups"].items():
        lines.append(f"| {group} | {g['precision']:.3f} | {g['recall']:.3f} | {g['worst_precision']:.3f} | "
                     f"{g['worst_recall']:.3f} |")
    lines += ["", "| threshold | shape P / R | colour P / R | background P / R |", "|---|---|---|---|"]
    for t, groups in r["sweep"].items():
        lines.append(f"| {t} | " + " | ".join(f"{groups[g]['precision']:.3f} / {groups[g]['recall']:.3f}"
                                               for g in ("shape", "colour", "background")) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imgsearch.evaluation.tags", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", type=Path, help="where the pictures, the index, tags.json and tags.md go")
    p.add_argument("--n", type=int, default=400, help="pictures in the collection")
    p.add_argument("--seed", type=int, default=3131, help="collection seed (training drew from 1234)")
    args = p.parse_args(argv)
    result = evaluate_tags(args.out_dir / "home", args.out_dir / "pictures", args.n, args.seed)
    (args.out_dir / "tags.json").write_text(json.dumps(result, indent=1))
    (args.out_dir / "tags.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
