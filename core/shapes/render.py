"""Draw scenes of the shapes world with all the variation the spec allows: picture sizes and
aspect ratios, backgrounds, colour jitter, rotation, anti-aliasing, noise, JPEG quality."""

from __future__ import annotations

import colorsys
import io
import json
import math
import random
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .world import BACKGROUNDS, COLOURS, RELATIONS, SHAPES, Obj, Scene, relation_between

HUES = {"red": 0, "orange": 30, "yellow": 55, "green": 120, "blue": 225, "purple": 280}
SIZE_RANGE = {"small": (0.12, 0.22), "large": (0.30, 0.45)}
CLEAR_AXIS_RATIO = 1.3  # a pair's larger gap at least this times the smaller: a clear-cut relation


def sample_scene(
    rng: random.Random,
    n_objects: int | None = None,
    relation: str | None = None,
    objects: list[tuple[str, str, str]] | None = None,
    min_axis_ratio: float = CLEAR_AXIS_RATIO,
) -> Scene:
    """A random scene. `objects` fixes (shape, colour, size) per object; `relation` fixes how
    the first stands to the second. Positions are drawn so the relation is clear-cut: the larger
    of the two gaps at least `min_axis_ratio` times the smaller (1.0: any placement the spec
    allows, near-diagonal pairs included)."""
    n = n_objects or (len(objects) if objects else rng.choice((1, 2)))
    for _ in range(1000):
        w, h = _picture_size(rng)
        kinds = objects or [_random_kind(rng) for _ in range(n)]
        if n == 2 and kinds[0][:2] == kinds[1][:2] and objects is None:
            continue  # two identical objects make relation sentences ambiguous
        placed = _place(rng, w, h, kinds, relation if n == 2 else None, min_axis_ratio)
        if placed:
            return Scene(w, h, rng.choice(BACKGROUNDS), tuple(placed))
    raise RuntimeError("could not place objects")


def _picture_size(rng: random.Random) -> tuple[int, int]:
    shape = rng.random()
    if shape < 0.3:
        s = rng.randint(160, 480)
        return s, s
    long, short = rng.randint(200, 480), rng.randint(160, 320)
    short = min(short, long)
    return (long, short) if shape < 0.65 else (short, long)


def _random_kind(rng: random.Random) -> tuple[str, str, str]:
    return rng.choice(SHAPES), rng.choice(COLOURS), rng.choice(("small", "large"))


def _place(
    rng: random.Random, w: int, h: int, kinds: list[tuple[str, str, str]], relation: str | None,
    min_axis_ratio: float = CLEAR_AXIS_RATIO,
) -> list[Obj] | None:
    side = min(w, h)
    for _ in range(200):
        objs = []
        for shape, colour, size in kinds:
            lo, hi = SIZE_RANGE[size]
            ext = rng.uniform(lo, hi) * side
            r = ext / 2
            cx, cy = rng.uniform(r + 1, w - r - 1), rng.uniform(r + 1, h - r - 1)
            rot = rng.uniform(-15, 15) if shape != "circle" else 0.0
            objs.append(Obj(shape, colour, size, cx, cy, ext, rot))
        if len(objs) == 2:
            a, b = objs
            dist = math.hypot(a.cx - b.cx, a.cy - b.cy)
            if dist < (a.extent + b.extent) / 2 * 1.15:
                continue  # overlap
            dx, dy = abs(a.cx - b.cx), abs(a.cy - b.cy)
            if max(dx, dy) < min_axis_ratio * min(dx, dy):
                continue  # diagonal: the relation would be a coin toss
            if relation and relation_between(a, b) != relation:
                continue
        return objs
    return None


def _colour(rng: random.Random, name: str) -> tuple[int, int, int]:
    hue = (HUES[name] + rng.uniform(-10, 10)) % 360
    sat = rng.uniform(0.65, 1.0)
    val = rng.uniform(0.75, 1.0) if name in ("yellow", "orange") else rng.uniform(0.6, 1.0)
    r, g, b = colorsys.hsv_to_rgb(hue / 360, sat, val)
    return int(r * 255), int(g * 255), int(b * 255)


def _background(rng: random.Random, name: str) -> tuple[int, int, int]:
    level = {"white": (230, 255), "gray": (105, 150), "black": (0, 30)}[name]
    v = rng.randint(*level)
    return v, v, v


def _polygon(obj: Obj, scale: float, rng: random.Random) -> list[tuple[float, float]]:
    r = obj.extent / 2 * scale
    cx, cy = obj.cx * scale, obj.cy * scale
    if obj.shape == "square":
        pts = [(-r, -r), (r, -r), (r, r), (-r, r)]
        r_fit = 1 / math.sqrt(2) if abs(obj.rotation) > 8 else 1.0  # keep the extent honest
        pts = [(x * r_fit, y * r_fit) for x, y in pts]
    elif obj.shape == "triangle":
        pts = [(0, -r), (r * math.sin(math.radians(120)), r * 0.5), (-r * math.sin(math.radians(120)), r * 0.5)]
        pts = [(x * 1.1, y * 1.1 + r * 0.2) for x, y in pts]
    else:  # five-pointed star
        inner = rng.uniform(0.38, 0.5)
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * inner
            ang = math.radians(-90 + 36 * k)
            pts.append((rad * math.cos(ang), rad * math.sin(ang)))
    rot = math.radians(obj.rotation)
    c, s = math.cos(rot), math.sin(rot)
    return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]


def render(scene: Scene, rng: random.Random) -> Image.Image:
    """Draw a scene; anti-aliased (supersampled) or hard-edged, with optional pixel noise."""
    scale = rng.choice((1, 2))
    img = Image.new("RGB", (scene.width * scale, scene.height * scale), _background(rng, scene.background))
    draw = ImageDraw.Draw(img)
    for obj in scene.objects:
        fill = _colour(rng, obj.colour)
        if obj.shape == "circle":
            r = obj.extent / 2 * scale
            cx, cy = obj.cx * scale, obj.cy * scale
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
        else:
            draw.polygon(_polygon(obj, scale, rng), fill=fill)
    if scale != 1:
        img = img.resize((scene.width, scene.height), Image.Resampling.LANCZOS)
    if rng.random() < 0.5:
        arr = np.asarray(img, dtype=np.int16)
        noise = np.random.default_rng(rng.getrandbits(32)).normal(0, rng.uniform(2, 10), arr.shape)
        img = Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))
    return img


def encode(img: Image.Image, rng: random.Random) -> tuple[bytes, str]:
    """Store as the spec allows: JPEG of quality 60-95, or PNG."""
    buf = io.BytesIO()
    if rng.random() < 0.75:
        img.save(buf, "JPEG", quality=rng.randint(60, 95))
        return buf.getvalue(), "jpg"
    img.save(buf, "PNG")
    return buf.getvalue(), "png"


def through_codec(img: Image.Image, rng: random.Random) -> Image.Image:
    """The picture as a reader of its stored file would see it (JPEG artefacts included)."""
    data, _ = encode(img, rng)
    return Image.open(io.BytesIO(data)).convert("RGB")


def write_scene(folder: Path, name: str, scene: Scene, rng: random.Random) -> Path:
    data, ext = encode(render(scene, rng), rng)
    path = folder / f"{name}.{ext}"
    path.write_bytes(data)
    return path


def write_collection(folder: Path, scenes: list[Scene], seed: int) -> dict[str, Scene]:
    """Write scenes as image files plus `scenes.json`; returns file name -> scene."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    out: dict[str, Scene] = {}
    for i, scene in enumerate(scenes):
        out[write_scene(folder, f"img{i:05d}", scene, rng).name] = scene
    manifest = {name: asdict(s) for name, s in out.items()}
    (folder / "scenes.json").write_text(json.dumps(manifest, indent=1))
    return out


def load_manifest(folder: Path) -> dict[str, Scene]:
    raw = json.loads((folder / "scenes.json").read_text())
    return {
        name: Scene(d["width"], d["height"], d["background"], tuple(Obj(**o) for o in d["objects"]))
        for name, d in raw.items()
    }


def swapped_colours(scene: Scene) -> Scene:
    a, b = scene.objects
    return replace(scene, objects=(replace(a, colour=b.colour), replace(b, colour=a.colour)))


__all__ = [
    "CLEAR_AXIS_RATIO", "COLOURS", "RELATIONS", "SHAPES", "load_manifest", "render", "sample_scene",
    "swapped_colours", "through_codec", "write_collection", "write_scene",
]
