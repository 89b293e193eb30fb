"""Photo-like JPEGs to index, generated once and cached in the output folder.

Speed depends on what the files hold: pure noise makes huge JPEGs that decode slowly, flat colour
makes tiny ones that decode fast; neither looks like a camera's output. These pictures mix what
photos have: smooth light and colour over the frame, out-of-focus objects, sharp edges, a
mid-frequency texture and sensor grain, saved as q90 4:2:0 JPEG with EXIF like a camera's.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageDraw, ImageFilter

GENERATOR_VERSION = 1  # bump when `render` changes, so cached sets are rebuilt
SPEC_FILE = "spec.json"


@dataclass(frozen=True)
class PhotoSet:
    name: str
    width: int
    height: int
    count: int
    quality: int = 90

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6


def render(seed: int, width: int, height: int) -> Image.Image:
    """One deterministic photo-like picture."""
    rng = np.random.default_rng(seed)
    # Smooth light and colour: a coarse random grid, upsampled.
    sw, sh = max(16, width // 8), max(12, height // 8)
    coarse = rng.integers(25, 230, size=(3, 4, 3), dtype=np.uint8)
    canvas = Image.fromarray(coarse, "RGB").resize((sw, sh), Image.Resampling.BICUBIC)
    # Objects, drawn small and blurred: out of focus, soft edges.
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(15, 40))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cx, cy = rng.uniform(0, sw), rng.uniform(0, sh)
        rx, ry = rng.uniform(0.02, 0.25) * sw, rng.uniform(0.02, 0.25) * sh
        kind = int(rng.integers(3))
        if kind == 0:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
        elif kind == 1:
            draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=colour)
        else:
            pts = [(cx + rx * np.cos(a), cy + ry * np.sin(a)) for a in np.sort(rng.uniform(0, 2 * np.pi, 5))]
            draw.polygon(pts, fill=colour)
    canvas = canvas.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.5, 2.5))))
    img = canvas.resize((width, height), Image.Resampling.BICUBIC)
    # Sharp detail at full resolution: thin edges an in-focus subject would have.
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(20, 60))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        x1, y1 = x0 + rng.normal(0, width / 10), y0 + rng.normal(0, height / 10)
        draw.line([x0, y0, x1, y1], fill=colour, width=int(rng.integers(1, 4)))
    # Texture (foliage, fabric) at a third of the resolution, and fine sensor grain.
    arr = np.asarray(img, dtype=np.int16)
    tw, th = max(1, width // 3), max(1, height // 3)
    texture = Image.fromarray(rng.integers(0, 256, size=(th, tw), dtype=np.uint8), "L")
    texture = np.asarray(texture.resize((width, height), Image.Resampling.BILINEAR), dtype=np.int16)
    arr += ((texture - 128) // 6)[..., None]
    arr += rng.integers(-6, 7, size=arr.shape, dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def _exif(seed: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "imgsearch-bench"
    exif[ExifTags.Base.Orientation] = 1
    exif[ExifTags.Base.DateTime] = f"2024:06:{1 + seed % 28:02d} 12:{seed % 60:02d}:00"
    return exif.tobytes()


def _write(job: tuple[Path, int, int, int, int]) -> int:
    path, seed, width, height, quality = job
    tmp = path.with_suffix(".part")
    render(seed, width, height).save(tmp, "JPEG", quality=quality, exif=_exif(seed))
    os.replace(tmp, path)
    return path.stat().st_size


def ensure_photos(root: Path, spec: PhotoSet, workers: int = 0) -> Path:
    """The folder of `spec`'s photos under `root`, generating it unless an identical one is there."""
    folder = root / spec.name
    want = {**asdict(spec), "generator": GENERATOR_VERSION}
    spec_file = folder / SPEC_FILE
    if spec_file.exists() and json.loads(spec_file.read_text()).get("spec") == want \
            and len(list(folder.glob("*.jpg"))) == spec.count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    base = sum(map(ord, spec.name)) * 100_000
    jobs = [(folder / f"{i:05d}.jpg", base + i, spec.width, spec.height, spec.quality)
            for i in range(spec.count)]
    workers = workers or (os.cpu_count() or 1)
    if workers == 1:
        sizes = [_write(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            sizes = list(pool.map(_write, jobs, chunksize=4))
    spec_file.write_text(json.dumps({"spec": want, "bytes": sum(sizes)}, indent=1))
    return folder


def photo_facts(folder: Path) -> dict[str, float]:
    """Count and mean file size, for the report (bytes per pixel tells a reader what was decoded)."""
    files = sorted(folder.glob("*.jpg"))
    total = sum(f.stat().st_size for f in files)
    return {"files": len(files), "mean_mb": total / max(1, len(files)) / 1e6}
