"""Are two pictures the same photo? A pixel check after aligning one onto the other.

A copy of a photo may be resized, recompressed, converted (PNG <-> JPEG), stripped of its EXIF or
cropped a little. A whole-picture perceptual hash (aHash, pHash: `imagehash`) survives the first
four but not a crop: 10 % off one side moves every cell of its 8x8 grid. So the check searches
for the crop instead: it takes each picture in turn as the *container* and the other as a *piece*
that could be a part of it (up to `MAX_CROP` of each side taken away, then resized by any
factor), finds the best placement of the piece on a small copy of the container (every scale and
offset, mean colour difference), refines it on a larger copy, and then compares the two at the
piece's own resolution (at most `COMPARE` px), each pixel against the 3x3 neighbourhood of the
other (half a pixel of misalignment is no difference). The pictures are the same photo when at
most `MAX_CHANGED` of the pixels differ by more than `CHANGED_LEVEL` in some colour channel and the
mean difference is at most `MAX_MEAN_DIFF` (another shot has another exposure, white balance and
noise even where nothing moved), and at `TINT` px, where edges have blurred away, no more than
`MAX_TINTED` of the pixels changed colour by `TINT_LEVEL` (a thing drawn or lit another way).

Why not a hash: two renders of one scene with the objects elsewhere differ only in a few percent
of their pixels (plain backgrounds), within what a hash calls near. What moved is exactly what
an aligned pixel check sees. numpy and Pillow only: `imagehash` would bring PyWavelets and scipy
for hashes this check cannot use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image, ImageFilter

MAX_CROP = 0.12  # share of a side a crop may have removed (10 % promised, slack for rounding)
COARSE = 48  # long side of the container in the full search
FINE = 128  # long side of the container in the refinement
COMPARE = 128  # at most this long a side in the final comparison
KEEP = 256  # long side a `Picture` keeps: enough for every step above
MAX_COARSE_COST = 16.0  # 0-255: a best coarse placement further off than this is another picture
CHANGED_LEVEL = 40  # 0-255: a pixel differs when some channel is off by more than this
MAX_CHANGED = 0.002  # share of differing pixels the same photo may show (JPEG ringing, resampling)
MAX_MEAN_DIFF = 6.0  # 0-255: mean difference the same photo may show (noise a recompression smoothed)
TINT = 32  # long side of the colour check: edges blur away, a shape's colour stays
TINT_LEVEL = 20  # 0-255: a pixel's colour differs there when some channel is off by more than this
MAX_TINTED = 0.004  # share of such pixels the same photo may show


@dataclass(frozen=True)
class Picture:
    """A picture reduced for comparing: at most KEEP px long, with its original size."""

    image: Image.Image  # RGB
    width: int
    height: int

    @classmethod
    def of(cls, image: Image.Image, width: int | None = None, height: int | None = None) -> Picture:
        """`image` (RGB), its original size when it is already a reduced copy."""
        w, h = width or image.width, height or image.height
        small = image.convert("RGB")
        if max(small.size) > KEEP:
            small.thumbnail((KEEP, KEEP), Image.Resampling.BOX)
        return cls(small, w, h)


@dataclass(frozen=True)
class Match:
    """How `piece` lies in `container` (0 or 1: which of the two pictures compared)."""

    container: int
    box: tuple[float, float, float, float]  # left, top, right, bottom as shares of the container
    changed: float  # share of pixels that differ after aligning
    same: bool
    mean_diff: float = 0.0  # mean absolute difference (0-255) after aligning

    @property
    def piece(self) -> int:
        return 1 - self.container

    @property
    def crop(self) -> float:
        """Share of the container's area the piece lacks (0: the whole picture)."""
        left, top, right, bottom = self.box
        return max(0.0, 1.0 - (right - left) * (bottom - top))


def compare(a: Picture, b: Picture) -> Match:
    """The better of `b` inside `a` and `a` inside `b`; `same` says whether they are one photo.
    When both fit (a crop that took away only plain background), the one with more pixels is
    taken for the container: shrinking a picture into part of a smaller one is the odd story."""
    tries = [m for m in (_align(a, b, 0), _align(b, a, 1)) if m is not None]
    if not tries:
        return Match(0, (0.0, 0.0, 1.0, 1.0), 1.0, False, 255.0)
    fits = [m for m in tries if m.same]
    if fits:
        pixels = (a.width * a.height, b.width * b.height)
        return max(fits, key=lambda m: (pixels[m.container], -m.changed))
    return min(tries, key=lambda m: (m.changed, m.crop))


def _align(container: Picture, piece: Picture, which: int) -> Match | None:
    """Search the piece's place in the container; None when no crop within MAX_CROP fits."""
    k_lo = max((1 - MAX_CROP) * container.width / piece.width, (1 - MAX_CROP) * container.height / piece.height)
    k_hi = min(container.width / piece.width, container.height / piece.height)
    if k_lo > k_hi * 1.02:
        return None  # the aspect ratios are too far apart for a small crop
    k_lo = min(k_lo, k_hi)
    cost, box = _search(container, piece, COARSE, k_lo, k_hi)
    if cost > MAX_COARSE_COST:
        return Match(which, (0.0, 0.0, 1.0, 1.0), 1.0, False, cost)
    box = _refine(container, piece, box)
    changed, mean_diff = _changed(container, piece, box, COMPARE, CHANGED_LEVEL)
    same = changed <= MAX_CHANGED and mean_diff <= MAX_MEAN_DIFF
    if same:
        same = _changed(container, piece, box, TINT, TINT_LEVEL)[0] <= MAX_TINTED
    cw, ch = container.width, container.height
    share = (box[0] / cw, box[1] / ch, box[2] / cw, box[3] / ch)
    return Match(which, share, changed, same, mean_diff)


Box = tuple[float, float, float, float]  # in the container's original pixels


def _scaled(pic: Picture, long_side: float) -> tuple[np.ndarray, float]:
    """The picture at `long_side` px (float32 HxWx3) and its factor from original pixels."""
    f = long_side / max(pic.width, pic.height)
    size = (max(1, round(pic.width * f)), max(1, round(pic.height * f)))
    return _pixels(pic.image, size), f


def _pixels(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0), dtype=np.float32)


def _costs(big: np.ndarray, small: np.ndarray) -> np.ndarray:
    """Mean absolute difference of `small` at every offset inside `big` (rows, cols)."""
    windows = sliding_window_view(big, small.shape)[:, :, 0]
    return np.abs(windows - small).mean(axis=(2, 3, 4))


def _search(container: Picture, piece: Picture, long_side: float, k_lo: float, k_hi: float) -> tuple[float, Box]:
    """Every scale (one pixel apart) and offset of the piece in a `long_side` copy of the container."""
    big, f = _scaled(container, long_side)
    steps = max(1, math.ceil((k_hi - k_lo) * max(piece.width, piece.height) * f) + 1)
    best: tuple[float, Box] = (math.inf, (0.0, 0.0, container.width, container.height))
    for k in np.linspace(k_lo, k_hi, steps):
        w = min(big.shape[1], max(1, round(piece.width * k * f)))
        h = min(big.shape[0], max(1, round(piece.height * k * f)))
        costs = _costs(big, _pixels(piece.image, (w, h)))
        y, x = np.unravel_index(int(np.argmin(costs)), costs.shape)
        if costs[y, x] < best[0]:
            best = (float(costs[y, x]), (x / f, y / f, (x + w) / f, (y + h) / f))
    return best


def _refine(container: Picture, piece: Picture, box: Box, reach: int = 2) -> Box:
    """The coarse box moved and resized by up to `reach` px on a FINE copy of the container."""
    big, f = _scaled(container, min(FINE, max(container.width, container.height)))
    x0, y0, x1, _ = (v * f for v in box)
    best: tuple[float, Box] = (math.inf, box)
    for dw in range(-reach, reach + 1):
        w = min(big.shape[1], max(1, round(x1 - x0) + dw))
        h = min(big.shape[0], max(1, round(w * piece.height / piece.width)))
        small = _pixels(piece.image, (w, h))
        left, top = max(0, round(x0) - reach), max(0, round(y0) - reach)
        right, bottom = min(big.shape[1], round(x0) + reach + w), min(big.shape[0], round(y0) + reach + h)
        region = big[top:bottom, left:right]
        if region.shape[0] < h or region.shape[1] < w:
            continue
        costs = _costs(region, small)
        y, x = np.unravel_index(int(np.argmin(costs)), costs.shape)
        if costs[y, x] < best[0]:
            best = (float(costs[y, x]), ((left + x) / f, (top + y) / f, (left + x + w) / f, (top + y + h) / f))
    return best[1]


def _changed(container: Picture, piece: Picture, box: Box, long_side: int, level: int) -> tuple[float, float]:
    """Share of pixels that differ by more than `level` between the piece and the container's box,
    compared at the piece's own resolution (at most `long_side` px), each against the other's 3x3
    neighbourhood; and the mean absolute difference, pixel against pixel."""
    f = container.image.width / container.width
    region = container.image.crop(tuple(v * f for v in box))  # type: ignore[arg-type]
    pf = piece.image.width / piece.width
    size_f = min(long_side / max(piece.width, piece.height), pf)
    size = (max(4, round(piece.width * size_f)), max(4, round(piece.height * size_f)))
    a = _blurred(region, size)
    b = _blurred(piece.image, size)
    off = np.minimum(_near(a, b), _near(b, a))
    return float((off > level).mean()), float(np.abs(a - b).mean())


def _blurred(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    resized = image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)
    return np.asarray(resized.filter(ImageFilter.BoxBlur(1)), dtype=np.int16)


def _near(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per pixel of `a`: the smallest largest-channel difference to b's 3x3 neighbourhood."""
    padded = np.pad(b, ((1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = a.shape[:2]
    best = np.full((h, w), 255, dtype=np.int16)
    for dy in range(3):
        for dx in range(3):
            diff = np.abs(a - padded[dy:dy + h, dx:dx + w]).max(axis=2)
            np.minimum(best, diff, out=best)
    return best
