"""Pictures for the text and tag sections, generated once and cached in the output folder.

Text: the OCR evaluation's pictures (`imgsearch.evaluation.ocr.build_text_collection`: photo-like
clutter, 640×480 to 1280×960, with 1-3 lines of words in many fonts, sizes and rotations, or the
same clutter with no text at all), split into a folder of each kind so each is timed alone.
Shapes: shapes-world scenes (`imgsearch.shapes`, 160-480 px a side), which hold no text."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from pathlib import Path
from typing import Any

READY = "ready.json"
TEXT_KINDS = ("text", "no-text")


def ensure_text_pictures(root: Path, per_kind: int, seed: int) -> dict[str, Path]:
    """Folders `text` and `no-text` of `per_kind` pictures each, drawn by one collection (about a
    quarter of its pictures have no text, so it draws four times `per_kind`)."""
    from imgsearch.evaluation.ocr import NO_TEXT_SHARE, build_text_collection

    folder = root / f"text-{per_kind}-seed{seed}"
    kinds = {kind: folder / kind for kind in TEXT_KINDS}
    if (folder / READY).exists():
        return kinds
    shutil.rmtree(folder, ignore_errors=True)
    collection = build_text_collection(folder / "drawn", math.ceil(per_kind / NO_TEXT_SHARE), seed)
    chosen: dict[str, list[str]] = {kind: [] for kind in TEXT_KINDS}
    for name, picture in collection.pictures.items():
        kind = "text" if picture.lines else "no-text"
        if len(chosen[kind]) < per_kind:
            chosen[kind].append(name)
    for kind, names in chosen.items():
        if len(names) < per_kind:
            raise RuntimeError(f"the text collection drew {len(names)} pictures of kind {kind!r}, "
                               f"not {per_kind}")
        kinds[kind].mkdir()
        for name in names:
            os.replace(collection.path(name), kinds[kind] / name)
    words = sum(len(collection.pictures[n].words) for n in chosen["text"])
    (folder / READY).write_text(json.dumps({"seed": seed, "per_kind": per_kind, "words": words}))
    return kinds


def ensure_shapes(root: Path, count: int, seed: int) -> Path:
    """A folder of `count` shapes-world scenes (JPEG, PNG or WebP, as the world's codecs draw)."""
    from imgsearch.shapes.render import sample_scene, write_collection

    folder = root / f"shapes-{count}-seed{seed}"
    if not (folder / READY).exists():
        shutil.rmtree(folder, ignore_errors=True)
        rng = random.Random(seed)
        write_collection(folder, [sample_scene(rng) for _ in range(count)], seed)
        (folder / READY).write_text(json.dumps({"seed": seed, "count": count}))
    return folder


def picture_facts(folder: Path) -> dict[str, Any]:
    """Count, mean size in pixels and in bytes: what the reader had to decode and look at."""
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    sizes = []
    for p in files:
        with Image.open(p) as im:  # the header only
            sizes.append(im.size)
    n = max(1, len(files))
    return {"files": len(files),
            "mean_megapixels": sum(w * h for w, h in sizes) / n / 1e6,
            "sides": [min(max(s) for s in sizes), max(max(s) for s in sizes)] if sizes else [0, 0],
            "mean_kb": sum(p.stat().st_size for p in files) / n / 1e3}
