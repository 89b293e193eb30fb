"""`decode` on hostile bytes made from small real files: cut at every offset, bytes flipped at
random, sizes in the headers blown up. Whatever comes in, `decode` returns a picture or raises
BadImageError with a one-line reason -- never another exception, never a hang -- and a cut file
is never passed off as the whole picture. Then the indexer meets a folder of such files."""

from __future__ import annotations

import io
import random
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch.errors import BadImageError
from imgsearch.imaging import SUPPORTED_SUFFIXES, DecodedImage, decode
from imgsearch.indexer import index
from imgsearch.models import Models
from imgsearch.settings import Settings
from imgsearch.stores import open_stores

# Each sample: suffix, and Pillow's save arguments. JP2 twice: tiled files cut at a tile boundary
# used to decode, the missing tiles grey.
SAMPLES: dict[str, tuple[str, dict]] = {
    "jpeg": (".jpg", {"format": "JPEG", "quality": 85}),
    "png": (".png", {"format": "PNG"}),
    "gif": (".gif", {"format": "GIF"}),
    "webp": (".webp", {"format": "WEBP", "quality": 80}),
    "tiff": (".tif", {"format": "TIFF"}),
    "bmp": (".bmp", {"format": "BMP"}),
    "jp2": (".jp2", {"format": "JPEG2000"}),
    "jp2-tiled": (".jp2", {"format": "JPEG2000", "tile_size": (32, 32)}),
    "ppm": (".ppm", {"format": "PPM"}),
}
SLOW = 10.0  # seconds for one call: generous, the point is "no hang"
TAIL = 32  # a cut may be accepted only this close to the end (trailers, checksums), and then only
# if every pixel is there: PNG's last bytes are zlib's checksum and IEND, GIF's its terminators
# imaging silences these process-wide, but pytest restores the filters it had before collection
pytestmark = [
    pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Pillow's "Truncated File Read", "Corrupt EXIF"
]


def _picture() -> Image.Image:
    """64x48, photo-ish: smooth colour blobs plus grain."""
    rng = np.random.default_rng(3)
    blobs = Image.fromarray(rng.integers(0, 256, (6, 8, 3), np.uint8)).resize((64, 48), Image.Resampling.BOX)
    grain = rng.integers(-9, 10, (48, 64, 1))
    return Image.fromarray(np.clip(np.asarray(blobs, np.int16) + grain, 0, 255).astype(np.uint8))


def _sample(kind: str) -> bytes:
    out = io.BytesIO()
    _picture().save(out, **SAMPLES[kind][1])
    return out.getvalue()


def _outcome(data: bytes, min_side: int = 32) -> tuple[DecodedImage | str, float]:
    """What `decode` made of `data` (a picture, or the reason it gave) and how long it took."""
    start = time.monotonic()
    try:
        result: DecodedImage | str = decode(data, min_side=min_side)
    except BadImageError as e:
        result = str(e)
        assert result and "\n" not in result and len(result) <= 160, repr(result)
    else:
        assert result.image.mode == "RGB" and min(result.image.size) >= 1
        assert result.width >= 1 and result.height >= 1
    return result, time.monotonic() - start


@pytest.mark.parametrize("kind", SAMPLES)
def test_cut_at_every_offset(kind: str) -> None:
    data = _sample(kind)
    whole = np.asarray(decode(data, min_side=32).image)
    worst, accepted = 0.0, []
    for n in range(len(data)):
        result, took = _outcome(data[:n])
        worst = max(worst, took)
        if isinstance(result, DecodedImage):
            accepted.append(n)
            assert np.array_equal(np.asarray(result.image), whole), f"cut at {n} of {len(data)}"
    assert not [n for n in accepted if n < len(data) - TAIL], f"cuts accepted: {accepted}"
    assert worst < SLOW, f"slowest cut took {worst:.1f} s"


@pytest.mark.parametrize("kind", SAMPLES)
def test_random_byte_flips(kind: str) -> None:
    data = _sample(kind)
    rng = random.Random(f"flips-{kind}")
    worst, outcomes = 0.0, {"picture": 0, "refused": 0}
    for _ in range(300):
        mangled = bytearray(data)
        span = min(len(data), 128) if rng.random() < 0.5 else len(data)  # headers get half the hits
        for _ in range(rng.randint(1, 8)):
            mangled[rng.randrange(span)] = rng.randrange(256)
        result, took = _outcome(bytes(mangled))
        worst = max(worst, took)
        outcomes["picture" if isinstance(result, DecodedImage) else "refused"] += 1
    assert outcomes["refused"] > 0
    assert worst < SLOW, f"slowest variant took {worst:.1f} s"


# --- huge declared sizes ---------------------------------------------------------------------------


def _png(data: bytearray, w: int, h: int) -> None:
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR's CRC, so it gets read


def _jpeg(data: bytearray, w: int, h: int) -> None:
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", min(h, 65535), min(w, 65535))


def _gif(data: bytearray, w: int, h: int) -> None:
    size = struct.pack("<HH", min(w, 65535), min(h, 65535))
    data[6:10] = size  # logical screen
    frame = data.index(b"\x2c", 13)  # image descriptor, after the global colour table
    data[frame + 5 : frame + 9] = size


def _bmp(data: bytearray, w: int, h: int) -> None:
    data[18:26] = struct.pack("<ii", w, h)


def _tiff(data: bytearray, w: int, h: int) -> None:
    ifd = struct.unpack_from("<I", data, 4)[0]
    for k in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * k
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in (256, 257):  # ImageWidth, ImageLength, rewritten as LONGs
            struct.pack_into("<HHII", data, entry, tag, 4, 1, w if tag == 256 else h)


def _ppm(data: bytearray, w: int, h: int) -> None:
    pixels = data.split(b"\n", 3)[3]
    data[:] = b"P6\n%d %d\n255\n" % (w, h) + pixels


def _jp2(data: bytearray, w: int, h: int) -> None:
    siz = data.index(b"\xff\x51")
    data[siz + 6 : siz + 14] = struct.pack(">II", w, h)  # Xsiz, Ysiz (origin 0)
    box = data.index(b"ihdr")
    data[box + 4 : box + 12] = struct.pack(">II", h, w)  # the container's header says it too


def _webp(data: bytearray, w: int, h: int) -> None:
    frame = data.index(b"VP8 ") + 8 + 6  # after the chunk header, frame tag and start code
    data[frame : frame + 4] = struct.pack("<HH", min(w, 16383), min(h, 16383))  # 14 bits each


PATCHES: dict[str, Callable[[bytearray, int, int], None]] = {
    "png": _png,
    "jpeg": _jpeg,
    "gif": _gif,
    "bmp": _bmp,
    "tiff": _tiff,
    "ppm": _ppm,
    "jp2": _jp2,
    "webp": _webp,
}
HUGE = [(65535, 65535), (100000, 1), (1, 100000), (16000, 16000), (4_000_000, 64)]


def _huge(kind: str, w: int, h: int) -> bytes:
    data = bytearray(_sample(kind))
    PATCHES[kind](data, w, h)
    return bytes(data)


@pytest.mark.parametrize("kind", PATCHES)
def test_huge_declared_sizes(kind: str) -> None:
    """16000x16000 is exactly the 256 MP limit: allowed by size, so it reaches the decoder."""
    worst = 0.0
    for w, h in HUGE:
        result, took = _outcome(_huge(kind, w, h))
        worst = max(worst, took)
        if isinstance(result, DecodedImage):  # only JPEG: libjpeg pads missing data, as viewers do
            assert kind == "jpeg" and (w, h) == (16000, 16000), f"{w}x{h} {kind} accepted"
        elif w * h > 256_000_000 or max(w, h) > 100 * min(w, h):
            assert "pixels" in result or "dimensions" in result, result  # refused from the header
    assert worst < SLOW, f"slowest took {worst:.1f} s"


# --- through the indexer ---------------------------------------------------------------------------


def _broken_folder(folder: Path) -> tuple[list[Path], list[Path]]:
    """The intact samples, and ~60 broken files made from them: cuts, huge sizes, junk."""
    folder.mkdir()
    good, bad = [], []
    for kind, (suffix, _) in SAMPLES.items():
        data = _sample(kind)
        good.append(folder / f"{kind}{suffix}")
        good[-1].write_bytes(data)
        for share in (0.02, 0.3, 0.6, 0.9, 0.97):
            bad.append(folder / f"{kind}-cut{int(share * 100)}{suffix}")
            bad[-1].write_bytes(data[: int(len(data) * share)])
        if kind in PATCHES:
            for w, h in [(65535, 65535), (100000, 1)]:
                bad.append(folder / f"{kind}-{w}x{h}{suffix}")
                bad[-1].write_bytes(_huge(kind, w, h))
    for name, junk in [
        ("empty.jpg", b""),
        ("notes.png", b"shopping list\n"),
        ("zeros.tif", bytes(4096)),
        ("random.jp2", random.Random(1).randbytes(3000)),
        ("header.ppm", b"P6\n64 48\n255\n"),
    ]:
        bad.append(folder / name)
        bad[-1].write_bytes(junk)
    assert {p.suffix for p in good + bad} <= SUPPORTED_SUFFIXES
    return good, bad


def test_indexer_skips_every_broken_file(tiny_settings: Settings, tmp_path: Path) -> None:
    good, bad = _broken_folder(tmp_path / "photos")
    assert len(bad) >= 60
    models = Models(tiny_settings)
    stores = open_stores(tiny_settings, models.facts(), models.clip.dim)
    try:
        report = index([tmp_path / "photos"], stores, models, captions=False)
    finally:
        stores.close()
    reasons = dict(report.skipped)
    assert set(reasons) == {str(p) for p in bad}
    assert all(r and "\n" not in r for r in reasons.values())
    assert report.embedded == len(good) and report.seen == len(good) + len(bad)
