"""A picture file as the duplicate finder compares it: reduced pixels (`likeness.Picture`) plus
what tells an original from a copy — format, JPEG quality, EXIF, bytes."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from imgsearch.imaging import decode
from imgsearch.likeness import KEEP, Picture
from PIL import Image

# The IJG (libjpeg) luminance table at quality 50; an encoder at quality q scales it (`_ijg`).
_IJG_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)
LOSSLESS = ("PNG", "BMP", "TIFF", "PPM", "GIF")


@dataclass(frozen=True)
class PictureFile:
    picture: Picture
    format: str | None  # Pillow's name: JPEG, PNG, WEBP...
    quality: int | None  # JPEG quality estimated from its tables; None for other formats
    exif: bool  # carries EXIF tags
    bytes: int

    @property
    def fidelity(self) -> int:
        """How little the encoding lost: 100 for lossless formats, the quality for JPEG."""
        if self.format in LOSSLESS:
            return 100
        return self.quality if self.quality is not None else 90


def read_picture(path: str | Path) -> PictureFile:
    """Decode and reduce a picture file. Raises OSError (gone, unreadable) or BadImageError."""
    data = Path(path).read_bytes()
    decoded = decode(data, min_side=KEEP)
    picture = Picture.of(decoded.image, decoded.width, decoded.height)
    with Image.open(io.BytesIO(data)) as im:
        fmt = im.format
        quality = jpeg_quality(im) if fmt in ("JPEG", "MPO") else None
        try:
            exif = len(im.getexif()) > 0
        except Exception:  # noqa: BLE001 - a broken EXIF block is no EXIF worth keeping
            exif = False
    return PictureFile(picture, fmt, quality, exif, len(data))


def jpeg_quality(im: Image.Image) -> int | None:
    """The IJG quality whose luminance table is nearest the file's (None without tables)."""
    tables = getattr(im, "quantization", None) or {}
    if 0 not in tables:
        return None
    luma = np.asarray(tables[0], dtype=np.float64)
    if luma.shape != (64,):
        return None
    # Pillow gives the table in zigzag order, as the IJG table above is not: compare sorted values
    have = np.sort(luma)
    errors = [float(np.abs(np.sort(_ijg(q)) - have).sum()) for q in range(1, 101)]
    return int(np.argmin(errors)) + 1


def _ijg(q: int) -> np.ndarray:
    scale = 5000 / q if q < 50 else 200 - 2 * q
    return np.clip(np.floor((_IJG_LUMA * scale + 50) / 100), 1, 255)
