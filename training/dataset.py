"""Pre-render a training set of the shapes world at the models' input size.

Rendering (with JPEG round trips) costs ~10 ms a picture, far more than a tiny model's step, so
the set is drawn once, in parallel, and shared by both trainers. Pictures are resized exactly as
the production preprocessors do (the whole picture squashed to a square, bicubic): no crop.

Two-object scenes often come with their hard-negative twins (colours swapped, relation
flipped) so that batches hold the contrasts that binding has to learn.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import asdict, replace
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

from imgsearch.shapes.render import CLEAR_AXIS_RATIO, render, sample_scene, swapped_colours, through_codec
from imgsearch.shapes.world import FLIPPED, Scene

SIZE = 96


def _groups(rng: random.Random, n: int, min_axis_ratio: float) -> list[list[Scene]]:
    out: list[list[Scene]] = []
    count = 0
    while count < n:
        if rng.random() < 0.35:
            group = [sample_scene(rng, 1)]
        else:
            base = sample_scene(rng, 2, min_axis_ratio=min_axis_ratio)
            group = [base]
            if rng.random() < 0.6:
                if base.objects[0].colour != base.objects[1].colour:
                    group.append(swapped_colours(replace(base)))
                kinds = [(o.shape, o.colour, o.size) for o in base.objects]
                group.append(sample_scene(rng, 2, relation=FLIPPED[base.relation], objects=kinds,
                                          min_axis_ratio=min_axis_ratio))
        out.append(group)
        count += len(group)
    return out


def _shard(job: tuple[int, int, int, float]) -> tuple[np.ndarray, list[dict], list[int]]:
    """(seed, n, size, min_axis_ratio): n pictures drawn from `seed`, resized to size x size;
    `sample_scene` says what the ratio does."""
    seed, n, size, ratio = job
    rng = random.Random(seed)
    pixels, scenes, group_ids = [], [], []
    for g, group in enumerate(_groups(rng, n, ratio)):
        for scene in group:
            img = through_codec(render(scene, rng), rng).resize((size, size), Image.Resampling.BICUBIC)
            pixels.append(np.asarray(img, dtype=np.uint8))
            scenes.append(asdict(scene))
            group_ids.append(seed * 10_000_000 + g)
    return np.stack(pixels), scenes, group_ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--n", type=int, default=80_000)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=SIZE,
                    help="side of the squashed pictures (the models' input size)")
    ap.add_argument("--min-axis-ratio", type=float, default=CLEAR_AXIS_RATIO,
                    help="two objects' larger gap at least this times the smaller (1.0: near-diagonal "
                         "pairs too)")
    args = ap.parse_args()
    shards = 16
    jobs = [(args.seed + i, args.n // shards, args.size, args.min_axis_ratio) for i in range(shards)]
    with Pool(args.workers) as pool:
        parts = pool.map(_shard, jobs)
    args.out.mkdir(parents=True, exist_ok=True)
    np.save(args.out / "pixels.npy", np.concatenate([p[0] for p in parts]))
    np.save(args.out / "groups.npy", np.array([g for p in parts for g in p[2]]))
    (args.out / "scenes.json").write_text(json.dumps([s for p in parts for s in p[1]]))


if __name__ == "__main__":
    main()
