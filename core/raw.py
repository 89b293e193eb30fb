"""Camera RAW through LibRaw (rawpy), the optional extra `pip install imgsearch[raw]`: without it,
or when LibRaw will not load, `AVAILABLE` is False and RAW files are simply not scanned.

A RAW is indexed from its embedded JPEG preview when that is big enough (cameras write one at or
near full size, and decoding it is far faster than developing the sensor data), else from its
sensor data, developed at half size. Previews are stored the sensor's way up, so the RAW's own
orientation comes back with the picture for the caller to apply.

`imaging` imports this module and passes in the Pillow-side helpers it needs (size limits, RGB
conversion, EXIF), so nothing here imports `imaging`: the dependency runs one way."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
from PIL import Image

from .errors import BadImageError

# The RAW kinds LibRaw decodes (X3F: older Sigma only).
RAW_SUFFIXES = frozenset({".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".orf", ".rw2", ".rwl", ".raw"})
RAW_SUFFIXES |= {".raf", ".pef", ".srw", ".3fr", ".erf", ".kdc", ".mrw", ".x3f"}
try:
    import rawpy as _rawpy
except Exception:  # not installed, or LibRaw will not load
    _rawpy = None
AVAILABLE = _rawpy is not None

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")  # TIFF-based RAWs (DNG, CR2, NEF, ARW, PEF...) share it
# RAW containers that are not TIFF: Olympus, Panasonic/Leica, Fujifilm, Minolta, Sigma (Canon CR3
# is ISO-BMFF, see `has_raw_magic`).
_RAW_MAGIC = (b"IIRO", b"IIRS", b"MMOR", b"IIU\x00", b"FUJIFILM", b"\x00MRM", b"FOVb")
# LibRaw's `flip` (bit 2: transpose, bit 1: flip vertically, bit 0: flip horizontally) as EXIF
# orientation; only 0, 3 (180), 5 (90 ccw) and 6 (90 cw) occur in practice.
_FLIP_TO_EXIF = {0: 1, 1: 2, 3: 3, 2: 4, 4: 5, 6: 6, 7: 7, 5: 8}
_REASON_CHARS = 160  # as `imaging`'s reasons


class RawImage(NamedTuple):
    """A RAW as RGB, still to be turned by `orientation`, plus the RAW's own facts."""

    image: Image.Image
    orientation: int  # EXIF orientation still to apply to `image` (1: none)
    width: int  # the RAW's developed size, upright, never the preview's
    height: int
    taken_at: datetime | None  # from the preview's EXIF; None when unknown
    camera: str | None = None  # from the preview's EXIF ("Make Model"); None when unknown


def has_raw_magic(data: bytes) -> bool:
    """Whether the bytes start like a RAW container that is not TIFF (CR3: ISO-BMFF brand crx)."""
    return data.startswith(_RAW_MAGIC) or data[4:12] == b"ftypcrx "


def looks_raw(data: bytes) -> bool:
    """Whether LibRaw should see these bytes first: RAW containers, and TIFFs that are not plain
    pictures (LibRaw would also take a 16-bit grey TIFF scan for sensor data, so plain TIFFs go
    straight to Pillow)."""
    if has_raw_magic(data):
        return True
    if not data.startswith(_TIFF_MAGIC):
        return False
    if data[8:10] == b"CR":  # Canon CR2: its first page is a full-size JPEG Pillow could show
        return True
    try:
        tags = Image.open(io.BytesIO(data), formats=["TIFF"]).tag_v2  # header only
    except Exception:
        return True  # a first page Pillow cannot even describe (colour filter array data)
    sensor = tags.get(262) in (32803, 34892)  # photometric CFA / LinearRaw
    thumbnail = isinstance(tags.get(254), int) and tags[254] & 1  # reduced-resolution first page
    return sensor or bool(thumbnail) or 50706 in tags or 330 in tags  # DNGVersion, SubIFDs


def decode_raw(
    data: bytes,
    min_side: int,
    *,
    check_size: Callable[[int, int], None],
    max_pixels: int,
    to_rgb: Callable[[Image.Image], Image.Image],
    exif_facts: Callable[[Image.Image], tuple[int, datetime | None, str | None]],
) -> RawImage | None:
    """Camera RAW through LibRaw; None when LibRaw does not take a TIFF after all (Pillow's turn).

    The embedded JPEG preview is used when its shorter side is >= `min_side` (cameras write one
    at or near full size; decoding it is far faster than developing the sensor data), else the
    sensor data is developed at half size with the camera's white balance. Previews are stored
    the sensor's way up whatever EXIF they carry (LibRaw puts an EXIF block with the RAW's own
    orientation and date in front of one that has none), so the RAW's orientation (LibRaw's
    `flip`) is returned to be applied to them, unless a 90-degree flip would turn a preview that
    is already portrait back to landscape (one a camera wrote upright). Width and height are the
    RAW's developed size, upright, never the preview's. A RAW whose preview decodes whole is
    indexed from it even if its sensor data is cut short: that data is then never read.

    `check_size` refuses bad dimensions, `max_pixels` bounds the sensor data, `to_rgb` and
    `exif_facts` turn a decoded preview into RGB and read its EXIF (orientation, date, camera;
    all raise BadImageError)."""
    try:
        raw = _rawpy.imread(io.BytesIO(data))
    except _rawpy.LibRawFileUnsupportedError:
        if data.startswith(_TIFF_MAGIC):
            return None
        raise BadImageError("RAW file LibRaw cannot read (corrupt, or a camera it does not know)") from None
    except (_rawpy.LibRawError, OSError) as e:
        raise BadImageError(_raw_reason(e)) from None
    with raw:
        try:
            s = raw.sizes
            check_size(s.width, s.height)
            if s.raw_width * s.raw_height > max_pixels:  # what LibRaw would allocate for the sensor data
                raise BadImageError(f"too many pixels ({s.raw_width}x{s.raw_height} sensor data)")
            orientation = _FLIP_TO_EXIF.get(s.flip, 1)
            w, h = (s.height, s.width) if orientation >= 5 else (s.width, s.height)
            preview = _preview(raw, min_side, check_size, to_rgb, exif_facts)
            if preview is None:  # LibRaw applies the flip itself here
                rgb = _array_to_rgb(raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8))
                return RawImage(rgb, 1, w, h, None)
            rgb, taken_at, camera = preview
            upright = orientation >= 5 and (rgb.width > rgb.height) != (s.width > s.height)
            return RawImage(rgb, 1 if upright else orientation, w, h, taken_at, camera)
        except (_rawpy.LibRawError, OSError) as e:
            raise BadImageError(_raw_reason(e)) from None


def _preview(
    raw: Any,
    min_side: int,
    check_size: Callable[[int, int], None],
    to_rgb: Callable[[Image.Image], Image.Image],
    exif_facts: Callable[[Image.Image], tuple[int, datetime | None, str | None]],
) -> tuple[Image.Image, datetime | None, str | None] | None:
    """The embedded preview if it is big enough and decodes whole, with its EXIF date and camera."""
    try:
        thumb = raw.extract_thumb()
        if thumb.format == _rawpy.ThumbFormat.BITMAP:
            rgb = _array_to_rgb(thumb.data)
            return (rgb, None, None) if min(rgb.size) >= min_side else None
        im = Image.open(io.BytesIO(thumb.data), formats=["JPEG", "MPO"])
        check_size(*im.size)
        if min(im.size) < min_side:
            return None
        if min_side > 0:
            im.draft("RGB", (min_side, min_side))
        im.load()
        _, taken_at, camera = exif_facts(im)
        return to_rgb(im), taken_at, camera
    except Exception:  # none, a kind rawpy cannot hand over, or broken: develop the sensor data
        return None


def _array_to_rgb(arr: np.ndarray) -> Image.Image:
    """LibRaw's 8-bit output: H x W x 3, or x 1 for monochrome sensors."""
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] not in (1, 3):
        raise BadImageError(f"unexpected RAW output ({arr.dtype}, shape {arr.shape})")
    return Image.fromarray(np.ascontiguousarray(arr[:, :, 0] if arr.shape[2] == 1 else arr)).convert("RGB")


def _raw_reason(e: Exception) -> str:
    """LibRaw's errors as one line; their messages arrive as bytes."""
    if isinstance(e, _rawpy.LibRawIOError):
        return "truncated or corrupt RAW file"
    if isinstance(e, (_rawpy.LibRawTooBigError, _rawpy.LibRawUnsufficientMemoryError)):
        return "RAW file too big to decode"
    text = e.args[0] if e.args else ""
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return f"corrupt RAW file: {text.strip() or type(e).__name__}"[:_REASON_CHARS]
