"""The bundled example collection: a fixed-seed set of shapes-world pictures, written on demand
(no image files are kept in the repository), with relation pictures beside their hard negatives."""

from __future__ import annotations

import random
from pathlib import Path

from .render import render, sample_scene, swapped_colours, encode
from .world import FLIPPED, canonical_caption


def write_examples(folder: Path, count: int = 60, seed: int = 7) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    scenes = []
    for turn in range(count):
        if len(scenes) >= count:
            break
        if turn % 2 == 0:
            base = sample_scene(rng, 2)
            while base.objects[0].colour == base.objects[1].colour:
                base = sample_scene(rng, 2)
            kinds = [(o.shape, o.colour, o.size) for o in base.objects]
            scenes += [base, swapped_colours(base),
                       sample_scene(rng, 2, relation=FLIPPED[base.relation], objects=kinds)]
        else:
            scenes += [sample_scene(rng, 1) for _ in range(3)]
    for i, scene in enumerate(scenes[:count]):
        data, ext = encode(render(scene, rng), rng)
        name = canonical_caption(scene).removeprefix("a ").replace(" ", "-")
        (folder / f"{i:03d}-{name}.{ext}").write_bytes(data)
    return min(count, len(scenes))
