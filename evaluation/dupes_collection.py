"""The held-out collection of the duplicate finder: shapes-world originals, the copies a library
fills with (resized, recompressed, cropped, EXIF stripped, PNG <-> JPEG), and hard negatives:
the same scene description drawn again with the objects elsewhere (same shapes, colours, sizes,
relation, background and picture size), which CLIP finds alike and which are not the same photo.

Every original and its copies form one true group; a hard negative is a group of its own. The
truth is written beside the pictures (`dupes.json`: file name -> group) and read back from there.
"""

from __future__ import annotations

import io
import json
import os
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from imgsearch.shapes.render import _place, render, sample_scene
from imgsearch.shapes.world import Scene
from PIL import Image

TRUTH_FILE = "dupes.json"
# What a copy went through: each kind is one of the changes, "messenger" two at once.
VARIANTS = ("resized", "recompressed", "cropped", "exif-stripped", "converted", "messenger")
CAMERAS = (("Canon", "Canon EOS R6"), ("NIKON CORPORATION", "NIKON Z 6"), ("Apple", "iPhone 12"))


@dataclass(frozen=True)
class DupesCollection:
    folder: Path
    groups: dict[str, str]  # file name -> true group (the original's name)

    def true_pairs(self) -> set[frozenset[str]]:
        """Every pair of files of one true group."""
        by_group: dict[str, list[str]] = {}
        for name, group in self.groups.items():
            by_group.setdefault(group, []).append(name)
        return {frozenset((a, b)) for members in by_group.values()
                for i, a in enumerate(members) for b in members[i + 1:]}


def _replaced(scene: Scene, rng: random.Random) -> Scene:
    """The same description with the objects placed again (and drawn at new sizes within theirs)."""
    kinds = [(o.shape, o.colour, o.size) for o in scene.objects]
    for _ in range(100):
        placed = _place(rng, scene.width, scene.height, kinds, scene.relation)
        if placed:
            return Scene(scene.width, scene.height, scene.background, tuple(placed))
    return sample_scene(rng, objects=kinds, relation=scene.relation)


def _exif(rng: random.Random, when: datetime) -> Image.Exif:
    tags = Image.Exif()
    tags[0x010F], tags[0x0110] = rng.choice(CAMERAS)
    tags.get_ifd(0x8769)[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
    return tags


def _save(image: Image.Image, path: Path, fmt: str, quality: int = 90, exif: Image.Exif | None = None) -> Path:
    path = path.with_suffix(".png" if fmt == "PNG" else ".jpg")
    buf = io.BytesIO()
    kwargs: dict[str, object] = {} if fmt == "PNG" else {"quality": quality}
    if exif is not None:
        kwargs["exif"] = exif
    image.save(buf, fmt, **kwargs)
    path.write_bytes(buf.getvalue())
    return path


def _variant(kind: str, image: Image.Image, fmt: str, rng: random.Random) -> tuple[Image.Image, str, int]:
    """(pixels, format, JPEG quality) of one kind of copy of the original `image` stored as `fmt`."""
    w, h = image.size
    if kind == "resized":
        s = rng.uniform(0.25, 0.75)
        return image.resize((max(8, round(w * s)), max(8, round(h * s))), Image.Resampling.LANCZOS), fmt, 85
    if kind == "recompressed":
        return image, "JPEG", rng.randint(40, 70)
    if kind == "cropped":  # up to 10 % of each side's length, shared between its two ends
        cut_w, cut_h = round(w * rng.uniform(0.02, 0.10)), round(h * rng.uniform(0.02, 0.10))
        left, top = rng.randint(0, cut_w), rng.randint(0, cut_h)
        return image.crop((left, top, w - (cut_w - left), h - (cut_h - top))), fmt, 88
    if kind == "exif-stripped":
        return image, fmt, 92
    if kind == "converted":
        return image, "JPEG" if fmt == "PNG" else "PNG", 90
    s = rng.uniform(0.4, 0.6)  # messenger: smaller and recompressed
    return image.resize((max(8, round(w * s)), max(8, round(h * s))), Image.Resampling.BILINEAR), "JPEG", rng.randint(40, 60)


def build_dupes_collection(folder: Path, originals: int = 40, seed: int = 4242, copies: int = 2,
                           negatives: float = 0.5) -> DupesCollection:
    """Write `originals` pictures, `copies` copies of each (kinds in turn) and, for a share
    `negatives` of them, a hard negative; half of the originals carry EXIF (camera, date)."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise FileExistsError(f"{folder} is not empty: stale pictures would join the collection")
    rng = random.Random(seed)
    groups: dict[str, str] = {}
    turn = 0
    for i in range(originals):
        scene = sample_scene(rng)
        image = render(scene, rng)
        fmt = "JPEG" if rng.random() < 0.75 else "PNG"
        exif = _exif(rng, datetime(2020, 1, 1) + timedelta(hours=i)) if i % 2 == 0 else None
        original = _save(image, folder / f"o{i:04d}", fmt, rng.randint(80, 95), exif)
        # the file as it is stored is what every copy starts from (a JPEG's artefacts included)
        stored = Image.open(original).convert("RGB")
        groups[original.name] = original.name
        for c in range(copies):
            kind = VARIANTS[turn % len(VARIANTS)]
            turn += 1
            pixels, vfmt, quality = _variant(kind, stored, fmt, rng)
            keep_exif = exif if kind in ("resized", "cropped") else None  # editors keep it; messengers don't
            copy = _save(pixels, folder / f"o{i:04d}-copy{c}-{kind}", vfmt, quality, keep_exif)
            groups[copy.name] = original.name
            made = original.stat().st_mtime + 86_400 * (c + 1)  # copies are made after the original
            os.utime(copy, (made, made))
        if rng.random() < negatives:
            again = render(_replaced(scene, rng), rng)
            negative = _save(again, folder / f"n{i:04d}", fmt, rng.randint(80, 95))
            groups[negative.name] = negative.name
    (folder / TRUTH_FILE).write_text(json.dumps(groups, indent=1))
    return DupesCollection(folder, groups)


def load_dupes_collection(folder: Path) -> DupesCollection:
    return DupesCollection(folder, json.loads((folder / TRUTH_FILE).read_text()))
