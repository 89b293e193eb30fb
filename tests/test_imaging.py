"""`imgsearch.imaging.decode` on real files written to disk: good images come out RGB, upright and
draft-decoded; every kind of bad file is refused with a one-line reason."""

from __future__ import annotations

import random
import struct
import zlib
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, ImageOps

from imgsearch import imaging
from imgsearch.errors import BadImageError
from imgsearch.imaging import SUPPORTED_SUFFIXES, DecodedImage, decode


def _noise(w: int, h: int, seed: int = 0) -> Image.Image:
    """Photo-ish content: smooth colour blobs plus grain, so files have realistic sizes."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (max(h // 50, 2), max(w // 50, 2), 3), np.uint8))
    base = np.asarray(small.resize((w, h), Image.Resampling.BILINEAR), dtype=np.int16)
    grain = rng.integers(-12, 13, (h, w, 1), dtype=np.int16)
    return Image.fromarray(np.clip(base + grain, 0, 255).astype(np.uint8))


def _write(tmp_path: Path, name: str, im: Image.Image, **save: object) -> bytes:
    path = tmp_path / name
    im.save(path, **save)
    return path.read_bytes()


def _bad(data: bytes, **kw: int) -> str:
    with pytest.raises(BadImageError) as info:
        decode(data, min_side=kw.get("min_side", 224))
    reason = str(info.value)
    assert reason and "\n" not in reason and len(reason) <= 160
    return reason


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG that declares w x h pixels but carries almost no data: the classic bomb shape."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_suffixes() -> None:
    assert {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"} <= SUPPORTED_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in SUPPORTED_SUFFIXES)


@pytest.mark.parametrize("name", ["a.jpg", "a.png", "a.webp", "a.bmp", "a.tiff", "a.gif"])
def test_plain_formats_decode(tmp_path: Path, name: str) -> None:
    src = _noise(64, 48)
    out = decode(_write(tmp_path, name, src), min_side=224)
    assert isinstance(out, DecodedImage)
    assert out.image.mode == "RGB" and out.image.size == (64, 48)
    assert (out.width, out.height) == (64, 48) and out.taken_at is None
    if name.endswith((".png", ".bmp", ".tiff")):  # lossless
        assert np.array_equal(np.asarray(out.image), np.asarray(src))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    src = _noise(40, 20, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _write(tmp_path, "o.png", src, exif=exif)
    out = decode(data, min_side=8)
    expected = ImageOps.exif_transpose(Image.open(tmp_path / "o.png")).convert("RGB")
    assert out.image.size == expected.size
    assert (out.width, out.height) == ((20, 40) if orientation >= 5 else (40, 20))
    assert np.array_equal(np.asarray(out.image), np.asarray(expected))


def test_orientation_6_jpeg_swaps_size(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    out = decode(_write(tmp_path, "r.jpg", _noise(400, 300), exif=exif), min_side=100)
    assert (out.width, out.height) == (300, 400)
    assert out.image.size[0] < out.image.size[1]


def test_big_jpeg_is_draft_decoded(tmp_path: Path) -> None:
    data = _write(tmp_path, "big.jpg", _noise(4000, 3000), quality=80)
    out = decode(data, min_side=224)
    assert (out.width, out.height) == (4000, 3000)
    assert out.image.size == (500, 375)  # 1/8: the largest scale keeping 375 >= 224
    assert out.image.mode == "RGB"


@pytest.mark.parametrize(
    ("min_side", "size"), [(150, (200, 150)), (200, (400, 300)), (300, (400, 300)), (301, (800, 600))]
)
def test_draft_never_goes_below_min_side(tmp_path: Path, min_side: int, size: tuple[int, int]) -> None:
    data = _write(tmp_path, "m.jpg", _noise(800, 600))
    out = decode(data, min_side=min_side)
    assert out.image.size == size and min(out.image.size) >= min_side
    assert (out.width, out.height) == (800, 600)


def test_small_original_stays_whole(tmp_path: Path) -> None:
    out = decode(_write(tmp_path, "s.jpg", _noise(100, 80)), min_side=224)
    assert out.image.size == (100, 80)


def test_exif_dates(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0132] = "2019:01:01 00:00:00"
    exif.get_ifd(0x8769)[0x9003] = "2021:07:04 12:34:56"
    assert decode(_write(tmp_path, "d.jpg", _noise(32, 32), exif=exif), min_side=8).taken_at == datetime(
        2021, 7, 4, 12, 34, 56
    )
    only_dt = Image.Exif()
    only_dt[0x0132] = "2019:01:02 03:04:05"
    assert decode(_write(tmp_path, "e.jpg", _noise(32, 32), exif=only_dt), min_side=8).taken_at == datetime(
        2019, 1, 2, 3, 4, 5
    )
    junk = Image.Exif()
    junk[0x0132] = "0000:00:00 00:00:00"
    assert decode(_write(tmp_path, "f.jpg", _noise(32, 32), exif=junk), min_side=8).taken_at is None


def test_cmyk_jpeg(tmp_path: Path) -> None:
    out = decode(_write(tmp_path, "c.jpg", Image.new("CMYK", (50, 40), (0, 255, 255, 0))), min_side=224)
    assert out.image.mode == "RGB" and out.image.size == (50, 40)
    r, g, b = out.image.getpixel((25, 20))
    assert r > 200 and g < 60 and b < 60


def test_palette_png_with_transparency_on_white(tmp_path: Path) -> None:
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(1, (0, 0, 10, 20))
    data = _write(tmp_path, "p.png", im, transparency=0)
    out = decode(data, min_side=8)
    assert out.image.mode == "RGB"
    assert out.image.getpixel((2, 2)) == (255, 0, 0)
    assert out.image.getpixel((15, 2)) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "L", "1", "I;16", "PA"])
def test_other_modes_to_rgb(tmp_path: Path, mode: str) -> None:
    if mode == "I;16":
        im = Image.fromarray(np.full((10, 12), 65535 // 2, np.uint16))
    elif mode == "PA":
        im = Image.new("RGBA", (12, 10), (0, 0, 255, 0)).convert("PA")
    else:
        im = Image.new(mode, (12, 10))
    ext = "tiff" if mode == "PA" else "png"
    out = decode(_write(tmp_path, f"m.{ext}", im), min_side=8)
    assert out.image.mode == "RGB" and out.image.size == (12, 10)
    if mode == "I;16":
        assert out.image.getpixel((0, 0)) == (127, 127, 127)  # scaled, not clipped to white
    if mode in ("RGBA", "LA", "PA"):
        assert out.image.getpixel((0, 0)) == (255, 255, 255)  # fully transparent → white


def test_half_transparent_rgba(tmp_path: Path) -> None:
    out = decode(_write(tmp_path, "h.png", Image.new("RGBA", (4, 4), (255, 0, 0, 128))), min_side=1)
    r, g, b = out.image.getpixel((0, 0))
    assert r == 255 and 125 <= g <= 129 and g == b


@pytest.mark.parametrize("name", ["anim.gif", "anim.webp"])
def test_animation_first_frame(tmp_path: Path, name: str) -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    data = _write(tmp_path, name, frames[0], save_all=True, append_images=frames[1:], duration=50, loop=0)
    r, g, b = decode(data, min_side=8).image.getpixel((8, 8))
    assert r > 200 and g < 50 and b < 50


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert _bad((tmp_path / "empty.jpg").read_bytes()) == "empty file"


def test_truncated_jpeg(tmp_path: Path) -> None:
    data = _write(tmp_path, "t.jpg", _noise(300, 200))
    assert "truncated" in _bad(data[: len(data) // 2])
    assert "truncated" in _bad(data[:-2])  # only the end marker missing
    assert "truncated" in _bad(data[:40])  # cut inside the header


def test_truncated_jpeg_rejected_even_if_pillow_told_to_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    data = _write(tmp_path, "t.jpg", _noise(300, 200))
    assert "truncated" in _bad(data[: len(data) // 2])


def test_truncated_png(tmp_path: Path) -> None:
    data = _write(tmp_path, "t.png", _noise(300, 200))
    assert "truncated" in _bad(data[: len(data) // 2])
    assert _bad(data[:30])


def test_text_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("shopping list: eggs, milk\n")
    assert "not an image" in _bad((tmp_path / "notes.jpg").read_bytes())


# imaging silences this warning process-wide at import, but pytest restores the filters it had
# before collection imported the module.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_decompression_bomb_header() -> None:
    assert "pixels" in _bad(_png_header_only(100_000, 100_000))  # Pillow's own refusal
    assert "pixels" in _bad(_png_header_only(20_000, 15_000))  # 300 MP: over our limit only


def test_decompression_bomb_with_low_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _write(tmp_path, "b.png", _noise(100, 100))
    monkeypatch.setattr(imaging, "MAX_PIXELS", 5_000)
    assert "too many pixels" in _bad(data)


def test_absurd_dimensions() -> None:
    assert "absurd" in _bad(_png_header_only(1, 50_000))


def test_corrupted_bytes_only_raise_bad_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imaging, "MAX_PIXELS", 1_000_000)  # keep mangled headers cheap
    rng = random.Random(7)
    for name in ("f.jpg", "f.png", "f.gif", "f.webp"):
        good = bytearray(_write(tmp_path, name, _noise(64, 48)))
        for _ in range(15):
            data = bytearray(good)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(min(len(data), 200))] = rng.randrange(256)
            try:
                out = decode(bytes(data), min_side=32)
            except BadImageError as e:
                assert str(e) and "\n" not in str(e)
            else:
                assert out.image.mode == "RGB"
