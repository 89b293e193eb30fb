"""Decode image bytes into what the models need: an RGB picture the right way up, its original
size and when it was taken. Bad files raise `BadImageError` with a one-line reason the catalog
keeps, so one broken photo never stops an indexing run.

Pillow reads JPEG, PNG, WebP, GIF, BMP, TIFF, JPEG 2000 and Netpbm; HEIC needs the `heic` extra
(pillow-heif), camera RAW the `raw` extra (rawpy, i.e. LibRaw). A format whose library is missing
is simply not scanned: `SUPPORTED_SUFFIXES` says what this installation reads.

Pillow and LibRaw release the GIL while they decode, convert and transpose, so callers may run
`decode` in a thread pool; nothing here takes a lock or touches shared state per call."""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError, features

from . import jpeg2000, raw
from .errors import BadImageError

MAX_PIXELS = 256_000_000  # more than any camera makes; beyond it a file is a bomb or a mistake
MAX_ASPECT = 100  # longer side over shorter; past this a "photo" is a strip nobody searches for
_REASON_CHARS = 160
# LZW packs at most ~2,600 pixels into a byte (12-bit codes for runs under 4,096). Pillow fills a
# frame whose data stops short with background, over the whole declared canvas: a 4 KB GIF that
# claims 16000x16000 cost 2 GB and 2 s, and came out as a picture.
_GIF_PIXELS_PER_BYTE = 4096

# Our own limit is the real one: lift Pillow's (which warns at 89 MP and refuses at 179 MP) to it,
# so Pillow only ever complains about files we reject anyway, and silence that warning for good,
# process-wide, because `warnings.catch_warnings` per call would not be thread-safe.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
# A cut-short TIFF (or TIFF-based RAW) header: the file's fate is reported as a reason anyway.
warnings.filterwarnings("ignore", message="Truncated File Read", category=UserWarning)

_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
_SUFFIXES |= {".pnm", ".pbm", ".pgm", ".ppm"}  # Netpbm P1-P6, 8 and 16 bits
_FORMATS = ["JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM"]
if features.check_codec("jpg_2000"):  # Pillow built with OpenJPEG (the wheels are)
    _SUFFIXES |= {".jp2", ".j2k", ".j2c", ".jpc", ".jpf", ".jpx"}
    _FORMATS.append("JPEG2000")
try:  # optional, for iPhone photos; module import runs once, so the opener is registered once
    from pillow_heif import register_heif_opener

    register_heif_opener()
except Exception:  # not installed, or its native library is broken: index the rest anyway
    pass
else:
    _SUFFIXES |= {".heic", ".heif"}
    _FORMATS.append("HEIF")
if raw.AVAILABLE:  # camera RAW: `pip install imgsearch[raw]` (rawpy, i.e. LibRaw)
    _SUFFIXES |= raw.RAW_SUFFIXES

Image.init()
# Only formats we mean to read: never hand a photo folder's junk to EPS (Ghostscript) and friends.
_OPEN_FORMATS = tuple(f for f in _FORMATS if f in Image.OPEN)
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_SUFFIXES)

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (_TIFF_MAGIC, "TIFF"),
    ((b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xffO\xffQ"), "JPEG 2000"),
    ((b"P1", b"P2", b"P3", b"P4", b"P5", b"P6"), "Netpbm"),
)
_EXIF_DATE = re.compile(r"(\d{4})[:\-/.](\d{2})[:\-/.](\d{2})[ T]+(\d{1,2}):(\d{2}):(\d{2})")
CAMERA_CHARS = 64  # a camera name past this is junk in the tag, not a name


class ExifFacts(NamedTuple):
    """What a picture's EXIF says, each fact None (orientation 1) when missing or unreadable."""

    orientation: int
    taken_at: datetime | None
    camera: str | None


_NO_FACTS = ExifFacts(1, None, None)
_EXIF_HEAD = 1 << 20  # a TIFF-based RAW's IFD0 and EXIF IFD sit at its start, before the image data


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image ready for the models (possibly downscaled), plus the original's facts."""

    image: Image.Image
    width: int  # original pixel size, after EXIF orientation
    height: int
    taken_at: datetime | None  # camera wall-clock time, naive; None when unknown
    camera: str | None = None  # EXIF "Make Model" (see `_exif_camera`); None when unknown


def decode(data: bytes, *, min_side: int) -> DecodedImage:
    """Decode `data`, letting JPEG's decoder downscale by 1/2, 1/4 or 1/8 (JPEG 2000's by powers
    of 2; a RAW's embedded preview stands in for its sensor data) as long as the shorter side
    stays >= `min_side` (the models resize anyway; this halves the time for big photos).
    Raises BadImageError, and nothing else, for anything that is not a usable image."""
    if not data:
        raise BadImageError("empty file")
    # Half-grey truncated photos must never be indexed; undo anyone who switched this on.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        return _decode(data, min_side)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        kind = _sniff(data)
        raise BadImageError(
            f"corrupt or truncated {kind} file" if kind else "not an image (unrecognised content)"
        ) from None
    except Image.DecompressionBombError:
        raise BadImageError(f"too many pixels (over {MAX_PIXELS // 1_000_000} MP)") from None
    except MemoryError:
        raise BadImageError("not enough memory to decode") from None
    except Exception as e:  # any Pillow failure on hostile bytes is "this file is bad"
        raise BadImageError(_reason(e, _sniff(data))) from e


def _decode(data: bytes, min_side: int) -> DecodedImage:
    if raw.AVAILABLE and raw.looks_raw(data):
        decoded = _decode_raw(data, min_side)
        if decoded is not None:
            return decoded
    im = Image.open(io.BytesIO(data), formats=_OPEN_FORMATS)
    w, h = im.size
    _check_size(w, h)
    if im.format == "GIF" and w * h > _GIF_PIXELS_PER_BYTE * len(data):
        raise BadImageError(f"corrupt GIF file: {w}x{h} pixels cannot fit in {len(data)} bytes")
    if im.format in ("JPEG", "MPO") and min_side > 0:
        im.draft("RGB", (min_side, min_side))  # scale s = largest of 8,4,2,1 with short/s >= min_side
    elif im.format == "JPEG2000":  # 1/2^r of the size, r the largest keeping short/2^r >= min_side
        levels, r = jpeg2000.levels(data), 0
        while min_side > 0 and r < levels and min(w, h) >> (r + 1) >= min_side:
            r += 1
        im.reduce = r  # type: ignore[method-assign]  # a 12 MP photo: 0.6 s at r=0, 0.04 s at r=3
    im.load()  # first frame of animations
    facts = _exif_facts(im)
    rgb = _to_rgb(im)
    method = _TRANSPOSE.get(facts.orientation)
    if method is not None:
        rgb = rgb.transpose(method)
        if facts.orientation >= 5:
            w, h = h, w
    return DecodedImage(image=rgb, width=w, height=h, taken_at=facts.taken_at, camera=facts.camera)


def _check_size(w: int, h: int) -> None:
    """Refuse from the header alone, before a single pixel is allocated."""
    if w < 1 or h < 1:
        raise BadImageError(f"image has no pixels ({w}x{h})")
    if w * h > MAX_PIXELS:
        raise BadImageError(f"too many pixels ({w}x{h}, limit {MAX_PIXELS // 1_000_000} MP)")
    if max(w, h) > MAX_ASPECT * min(w, h):
        raise BadImageError(f"absurd dimensions ({w}x{h})")


def _decode_raw(data: bytes, min_side: int) -> DecodedImage | None:
    """Camera RAW (see `raw`), turned upright; dated (and its camera named) from the file's own
    EXIF when its preview gave none. None when LibRaw does not take a TIFF after all (Pillow's
    turn)."""
    out = raw.decode_raw(
        data, min_side, check_size=_check_size, max_pixels=MAX_PIXELS, to_rgb=_to_rgb, exif_facts=_exif_facts
    )
    if out is None:
        return None
    method = _TRANSPOSE.get(out.orientation)
    rgb = out.image if method is None else out.image.transpose(method)
    taken_at, camera = out.taken_at, out.camera
    if (taken_at is None or camera is None) and data.startswith(_TIFF_MAGIC):  # DNG, CR2, NEF...
        try:
            exif = Image.Exif()
            exif.load(data)
            taken_at = taken_at or _exif_date(exif)
            camera = camera or _exif_camera(exif)
        except Exception:
            pass
    return DecodedImage(image=rgb, width=out.width, height=out.height, taken_at=taken_at, camera=camera)


def read_exif(path: Path) -> ExifFacts:
    """A picture file's EXIF from its header alone, no pixels decoded (a backfill of old rows reads
    thousands). A TIFF-based RAW Pillow cannot open (DNG, NEF...) is read from its first
    `_EXIF_HEAD` bytes. A file that is gone, unreadable or neither (CR3, RAF...) gives no facts;
    this never raises."""
    try:
        with Image.open(path, formats=_OPEN_FORMATS) as im:
            if im.format == "PNG" and "exif" not in im.info:
                return _NO_FACTS  # Pillow would decode the pixels to look for an eXIf chunk after them
            return _exif_facts(im)
    except Exception:
        pass
    try:
        with open(path, "rb") as f:
            head = f.read(_EXIF_HEAD)
        if head.startswith(_TIFF_MAGIC):
            exif = Image.Exif()
            exif.load(head)
            return _facts(exif)
    except Exception:
        pass
    return _NO_FACTS


def _exif_facts(im: Image.Image) -> ExifFacts:
    """Orientation, capture time and camera; broken EXIF costs the facts, never the photo."""
    try:
        exif = im.getexif()
    except Exception:
        return _NO_FACTS
    return _facts(exif)


def _facts(exif: Image.Exif) -> ExifFacts:
    """One EXIF block's facts, each lost alone when its tag is broken."""
    try:
        orientation = exif.get(ExifTags.Base.Orientation, 1)
        orientation = orientation if isinstance(orientation, int) else 1
    except Exception:
        orientation = 1
    return ExifFacts(orientation, _exif_date(exif), _exif_camera(exif))


def _exif_camera(exif: Image.Exif) -> str | None:
    """IFD0's Make and Model as one name, "Canon" + "Canon EOS 5D" -> "Canon EOS 5D" (the make
    is not repeated), cleaned of NULs and control characters and cut to CAMERA_CHARS."""
    try:
        make, model = _exif_text(exif.get(ExifTags.Base.Make)), _exif_text(exif.get(ExifTags.Base.Model))
    except Exception:
        return None
    if make and model.casefold().startswith(make.casefold()):
        make = ""
    name = f"{make} {model}".strip()[:CAMERA_CHARS].rstrip()
    return name or None


def _exif_text(value: object) -> str:
    """An EXIF ASCII value as clean text: "" for anything else."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return ""
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in value.replace("\x00", ""))
    return " ".join(text.split())


def _exif_date(exif: Image.Exif) -> datetime | None:
    """DateTimeOriginal, else DateTime (when the file was last written: better than nothing)."""
    taken_at = None
    try:
        taken_at = _parse_date(exif.get_ifd(ExifTags.IFD.Exif).get(ExifTags.Base.DateTimeOriginal))
    except Exception:
        pass
    if taken_at is None:
        try:
            taken_at = _parse_date(exif.get(ExifTags.Base.DateTime))
        except Exception:
            pass
    return taken_at


def _parse_date(value: object) -> datetime | None:
    """EXIF's "YYYY:MM:DD HH:MM:SS", tolerating the variants cameras and editors write."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    m = _EXIF_DATE.search(value)
    if m is None:
        return None
    try:
        return datetime(*(int(g) for g in m.groups()))
    except ValueError:  # 0000:00:00 00:00:00 and other placeholders
        return None


def _to_rgb(im: Image.Image) -> Image.Image:
    """RGB for the models: transparency is composited on white, deep greys scaled to 8 bits."""
    mode = im.mode
    if mode == "RGB":
        return im
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
        if im.mode == "RGB":
            return im
    elif mode.startswith("I") or mode == "F":
        return _deep_grey_to_rgb(im)
    elif mode in ("RGBa", "La"):  # premultiplied alpha
        im = im.convert("RGBA")
    if "A" in im.getbands():
        rgba = im if im.mode == "RGBA" else im.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba, mask=rgba.getchannel("A"))
        return out
    return im.convert("RGB")  # L, 1, CMYK, YCbCr...


def _deep_grey_to_rgb(im: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greys; Pillow's own conversion would clip them to white."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PPM"):
        # Pillow scales every Netpbm maxval over 255 to 0..65535: a dark 16-bit PGM stays dark
        grey = (arr >> 8).astype(np.uint8)
    else:
        arr = np.nan_to_num(arr.astype(np.float64))
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0 and hi <= 255 and im.mode != "F":
            scaled = arr
        elif lo >= 0 and hi <= 65535 and im.mode != "F":
            scaled = arr / 257
        elif lo >= 0 and hi <= 1:
            scaled = arr * 255
        else:
            scaled = (arr - lo) * (255 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")  # 2-D uint8 is mode L


def _sniff(data: bytes) -> str | None:
    """Name the format the bytes claim to be, for a better reason than "not an image"."""
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if raw.has_raw_magic(data):
        return "RAW"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def _reason(e: Exception, kind: str | None) -> str:
    """One short line for the catalog's "skipped: ..." column."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "truncated" in text.lower():
        return "truncated file"
    reason = f"corrupt {kind} file: {text}" if kind else f"cannot decode: {text}"
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 1] + "…"
