"""The formats beyond the everyday ones, each from a real file: JPEG 2000 and Netpbm (Pillow),
camera RAW (LibRaw through rawpy; DNGs written by pidng from a known Bayer mosaic) and HEIC
(pillow-heif). Each decodes to the right picture, size and way up, and a folder of them goes
through the real indexer."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch.errors import BadImageError
from imgsearch.imaging import SUPPORTED_SUFFIXES, decode
from imgsearch.indexer import index
from imgsearch.models import Models
from imgsearch.settings import Settings
from imgsearch.stores import open_stores

RED, BLUE = (230, 30, 20), (20, 40, 220)


def _halves(w: int, h: int) -> Image.Image:
    """Red left half, blue right half: where each colour lands tells the orientation."""
    im = Image.new("RGB", (w, h), BLUE)
    im.paste(RED, (0, 0, w // 2, h))
    return im


def _sides(im: Image.Image) -> dict[str, np.ndarray]:
    """The mean colour of the outer quarter on each side of a picture."""
    a = np.asarray(im.convert("RGB"), dtype=np.float64)
    h, w = a.shape[:2]
    strips = {"left": a[:, : w // 4], "right": a[:, -w // 4 :], "top": a[: h // 4], "bottom": a[-h // 4 :]}
    return {side: strip.mean((0, 1)) for side, strip in strips.items()}


def _where_red(im: Image.Image) -> str:
    """Which side of a decoded picture the red half is on."""
    sides = _sides(im)
    return max(sides, key=lambda k: sides[k][0] - sides[k][2])


def _is(pixel: tuple[int, ...], colour: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(int(p) - c) <= tol for p, c in zip(pixel[:3], colour))


# --- JPEG 2000 --------------------------------------------------------------------------------


def test_suffixes_cover_the_new_formats() -> None:
    assert {".jp2", ".j2k", ".jpf", ".jpx", ".pnm", ".pbm", ".pgm", ".ppm"} <= SUPPORTED_SUFFIXES


@pytest.mark.parametrize("suffix", [".jp2", ".j2k", ".jpx", ".jpf"])
def test_jpeg2000_decodes_losslessly(tmp_path: Path, suffix: str) -> None:
    src = _halves(64, 48)
    src.save(tmp_path / f"a{suffix}")  # .j2k: a bare codestream; the others: the JP2 container
    out = decode((tmp_path / f"a{suffix}").read_bytes(), min_side=224)
    assert (out.width, out.height) == (64, 48) and out.image.mode == "RGB"
    assert np.array_equal(np.asarray(out.image), np.asarray(src))


def test_big_jpeg2000_is_decoded_reduced(tmp_path: Path) -> None:
    _halves(1600, 1200).save(tmp_path / "big.jp2")
    out = decode((tmp_path / "big.jp2").read_bytes(), min_side=224)
    assert (out.width, out.height) == (1600, 1200)
    assert out.image.size == (400, 300)  # 1/4: the smallest power-of-2 scale keeping 300 >= 224
    assert _where_red(out.image) == "left"


def test_jpeg2000_reduction_stops_at_the_codestream_levels(tmp_path: Path) -> None:
    _halves(1600, 1200).save(tmp_path / "shallow.jp2", num_resolutions=2)  # one decomposition level
    out = decode((tmp_path / "shallow.jp2").read_bytes(), min_side=100)
    assert out.image.size == (800, 600)


# --- Netpbm ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "mode"), [(".ppm", "RGB"), (".pgm", "L"), (".pbm", "1"), (".pnm", "RGB")])
def test_netpbm_binary_written_by_pillow(tmp_path: Path, suffix: str, mode: str) -> None:
    src = _halves(64, 48).convert(mode)
    src.save(tmp_path / f"a{suffix}", format="PPM")
    out = decode((tmp_path / f"a{suffix}").read_bytes(), min_side=224)
    assert (out.width, out.height) == (64, 48) and out.image.mode == "RGB"
    assert np.array_equal(np.asarray(out.image), np.asarray(src.convert("RGB")))


@pytest.mark.parametrize(
    ("data", "pixels"),
    [
        (b"P1\n# plain bitmap: 1 is black\n2 2\n1 0\n0 1\n", [[0, 255], [255, 0]]),
        (b"P2\n2 2\n255\n0 10\n20 255\n", [[0, 10], [20, 255]]),
        (b"P2\n2 1\n1023\n0 1023\n", [[0, 255]]),  # 10-bit plain grey
        (b"P5\n2 1\n65535\n" + bytes([0x10, 0x00, 0xFF, 0xFF]), [[16, 255]]),  # 16-bit, big-endian
        (b"P5\n2 1\n4095\n" + bytes([0x00, 0x80, 0x0F, 0xFF]), [[8, 255]]),  # 12-bit: 128/4095 -> 8
    ],
)
def test_netpbm_grey_variants(data: bytes, pixels: list[list[int]]) -> None:
    out = decode(data, min_side=1)
    grey = np.asarray(out.image)[..., 0]
    assert np.array_equal(np.asarray(out.image)[..., 1], grey) and np.array_equal(grey, pixels)


def test_dark_16bit_pgm_stays_dark() -> None:
    """All samples <= 255 out of 65535: near black, not read as if they were 8-bit values."""
    body = np.full((4, 6), 200, ">u2").tobytes()
    assert decode(b"P5\n6 4\n65535\n" + body, min_side=1).image.getpixel((0, 0)) == (0, 0, 0)


@pytest.mark.parametrize(
    "data",
    [
        b"P3\n2 1\n255\n230 30 20  20 40 220\n",
        b"P3\n2 1\n65535\n59110 7710 5140  5140 10280 56540\n",
        b"P6\n2 1\n65535\n" + np.array([59110, 7710, 5140, 5140, 10280, 56540], ">u2").tobytes(),
    ],
)
def test_netpbm_colour_variants(data: bytes) -> None:
    out = decode(data, min_side=1)
    assert out.image.size == (2, 1)
    assert _is(out.image.getpixel((0, 0)), RED, 2) and _is(out.image.getpixel((1, 0)), BLUE, 2)


# --- camera RAW -----------------------------------------------------------------------------------


def _mosaic(w: int, h: int) -> np.ndarray:
    """The RGGB sensor readout (12 bits) of a scene that is red on its left half, blue on its right."""
    scene = np.full((h, w, 3), 150, np.uint16)
    scene[:, : w // 2, 0] = 3500
    scene[:, w // 2 :, 2] = 3500
    m = np.empty((h, w), np.uint16)
    m[0::2, 0::2], m[0::2, 1::2] = scene[0::2, 0::2, 0], scene[0::2, 1::2, 1]
    m[1::2, 0::2], m[1::2, 1::2] = scene[1::2, 0::2, 1], scene[1::2, 1::2, 2]
    return m


def _raw_tags(w: int, h: int, orientation: int) -> dict:
    """What LibRaw needs to develop the mosaic: CFA layout, levels, an identity colour matrix."""
    from pidng.dng import Tag

    one, zero = [10000, 10000], [0, 10000]
    return {
        Tag.ImageWidth: [w],
        Tag.ImageLength: [h],
        Tag.TileWidth: [w],
        Tag.TileLength: [h],
        Tag.Orientation: [orientation],
        Tag.PhotometricInterpretation: [32803],
        Tag.SamplesPerPixel: [1],
        Tag.BitsPerSample: [16],
        Tag.CFARepeatPatternDim: [2, 2],
        Tag.CFAPattern: [0, 1, 1, 2],
        Tag.BlackLevel: [0],
        Tag.WhiteLevel: [4095],
        Tag.CalibrationIlluminant1: [21],
        Tag.ColorMatrix1: [one, zero, zero, zero, one, zero, zero, zero, one],
        Tag.AsShotNeutral: [[1, 1], [1, 1], [1, 1]],
        Tag.Make: "Test",
        Tag.Model: "Mosaic",
        Tag.DateTime: "2022:03:04 05:06:07",
    }


def _dng(w: int, h: int, orientation: int = 1) -> bytes:
    """A DNG as pidng's converter writes it: one IFD of sensor data, no preview."""
    pytest.importorskip("rawpy")
    from pidng.core import RAW2DNG, DNGTags

    tags = DNGTags()
    for tag, value in _raw_tags(w, h, orientation).items():
        tags.set(tag, value)
    converter = RAW2DNG()
    converter.options(tags, path="", compress=False)
    return bytes(converter.convert(_mosaic(w, h)))


def _dng_with_preview(w: int, h: int, orientation: int, preview: Image.Image) -> bytes:
    """Sensor data in IFD0 and a baseline-JPEG preview in the IFD chained after it (where LibRaw
    finds previews of TIFF-based RAWs), laid out by pidng's DNG writer."""
    pytest.importorskip("rawpy")
    from pidng.dng import DNG, Tag, dngIFD, dngTag

    jpeg = io.BytesIO()
    preview.save(jpeg, format="JPEG", quality=92)
    sensor, shown = dngIFD(), dngIFD()
    sensor_at, preview_at = dngTag(Tag.TileOffsets, [0]), dngTag(Tag.StripOffsets, [0])
    tile = _mosaic(w, h).tobytes()
    sensor.tags = [
        sensor_at,
        dngTag(Tag.TileByteCounts, [len(tile)]),
        dngTag(Tag.NewSubfileType, [0]),
        dngTag(Tag.Compression, [1]),
        dngTag(Tag.DNGVersion, [1, 4, 0, 0]),
    ]
    sensor.tags += [dngTag(tag, value) for tag, value in _raw_tags(w, h, orientation).items()]
    shown.tags = [
        preview_at,
        dngTag(Tag.StripByteCounts, [len(jpeg.getvalue())]),
        dngTag(Tag.NewSubfileType, [1]),
        dngTag(Tag.Compression, [7]),
        dngTag(Tag.ImageWidth, [preview.width]),
        dngTag(Tag.ImageLength, [preview.height]),
        dngTag(Tag.RowsPerStrip, [preview.height]),
        dngTag(Tag.PhotometricInterpretation, [6]),
        dngTag(Tag.SamplesPerPixel, [3]),
        dngTag(Tag.BitsPerSample, [8, 8, 8]),
    ]
    dng = DNG()
    dng.IFDs, dng.ImageDataStrips = [sensor, shown], [tile, jpeg.getvalue()]
    buf = bytearray(dng.dataLen())  # also places the strips: StripOffsets[i]
    sensor_at.setValue([dng.StripOffsets[0]])
    preview_at.setValue([dng.StripOffsets[1]])
    dng.setBuffer(buf)
    sensor.NextIFDOffset = shown.offset
    dng.write()
    return bytes(buf)


def test_raw_suffixes_follow_rawpy() -> None:
    pytest.importorskip("rawpy")
    assert {".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".pef"} <= SUPPORTED_SUFFIXES


@pytest.mark.parametrize(
    ("orientation", "size", "red"),
    [(1, (128, 96), "left"), (3, (128, 96), "right"), (6, (96, 128), "top"), (8, (96, 128), "bottom")],
)
def test_dng_sensor_data_is_developed(orientation: int, size: tuple[int, int], red: str) -> None:
    out = decode(_dng(128, 96, orientation), min_side=32)
    assert (out.width, out.height) == size  # the RAW's own size, turned upright
    assert out.image.mode == "RGB" and out.image.size == (size[0] // 2, size[1] // 2)  # half size
    sides = _sides(out.image)
    blue = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[red]
    r, _, b = sides[red]
    assert r > 180 and b < 120, f"the red half came out {sides[red]}"
    r, _, b = sides[blue]
    assert b > 180 and r < 60, f"the blue half came out {sides[blue]}"
    assert out.taken_at == datetime(2022, 3, 4, 5, 6, 7)  # the DNG's own DateTime


def test_dng_embedded_preview_is_used_when_big_enough() -> None:
    # The preview shows green|yellow rather than red|blue, so the result says which one was read.
    preview = Image.new("RGB", (128, 96), (240, 230, 20))
    preview.paste((20, 200, 40), (0, 0, 64, 96))
    data = _dng_with_preview(128, 96, 6, preview)
    out = decode(data, min_side=40)
    assert (out.width, out.height) == (96, 128)
    assert out.image.size == (48, 64)  # drafted to 1/2, then turned by the RAW's orientation
    assert _is(out.image.getpixel((24, 5)), (20, 200, 40)), "green half on top: preview, turned 90 cw"
    # LibRaw puts an EXIF block with the RAW's date (and orientation) in front of a bare preview
    assert out.taken_at == datetime(2022, 3, 4, 5, 6, 7)
    whole = decode(data, min_side=60)  # the preview's 96 px whole is enough, at 1/2 it is not...
    assert whole.image.size == (96, 128) and _is(whole.image.getpixel((48, 5)), (20, 200, 40))
    small = decode(data, min_side=100)  # ...and past 96 px only the sensor data will do
    assert small.image.size == (48, 64) and _where_red(small.image) == "top"
    assert small.taken_at == datetime(2022, 3, 4, 5, 6, 7)


def test_dng_preview_already_upright_is_not_turned_again() -> None:
    preview = _halves(128, 96).transpose(Image.Transpose.ROTATE_270)  # turned 90 cw by the camera
    out = decode(_dng_with_preview(128, 96, 6, preview), min_side=40)
    assert (out.width, out.height) == (96, 128) and out.image.size[0] < out.image.size[1]
    assert _where_red(out.image) == "top"


@pytest.mark.filterwarnings("ignore:Truncated File Read")  # Pillow, on the cut TIFF headers
def test_broken_raw_files_are_bad_images() -> None:
    pytest.importorskip("rawpy")
    data = _dng(128, 96)
    # Cut anywhere short of the last sample: LibRaw reads a final sample missing one byte without
    # complaint (one wrong pixel), so the last cut is two bytes before the end.
    cuts = [data[:n] for n in [*range(1, len(data), 997), len(data) - 2]]
    fuji, panasonic = b"FUJIFILMCCD-RAW 0201" + bytes(300), b"IIU\x00" + bytes(100)
    for broken in [*cuts, fuji, panasonic]:
        with pytest.raises(BadImageError) as info:
            decode(broken, min_side=32)
        assert str(info.value) and "\n" not in str(info.value)


def test_plain_16bit_tiff_is_not_taken_for_a_raw(tmp_path: Path) -> None:
    """LibRaw opens a 16-bit grey TIFF as sensor data; it must stay Pillow's, greys intact."""
    Image.fromarray(np.full((48, 64), 40000, np.uint16)).save(tmp_path / "scan.tif")
    out = decode((tmp_path / "scan.tif").read_bytes(), min_side=1)
    assert out.image.size == (64, 48) and out.image.getpixel((3, 3)) == (156, 156, 156)


# --- HEIC ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("orientation", "size", "red"), [(1, (64, 48), "left"), (6, (48, 64), "top")])
def test_heic_decodes_upright(tmp_path: Path, orientation: int, size: tuple[int, int], red: str) -> None:
    pytest.importorskip("pillow_heif")
    assert {".heic", ".heif"} <= SUPPORTED_SUFFIXES
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0x9003] = "2023:01:02 03:04:05"
    _halves(64, 48).save(tmp_path / "a.heic", format="HEIF", quality=90, exif=exif.tobytes())
    out = decode((tmp_path / "a.heic").read_bytes(), min_side=16)
    assert (out.width, out.height) == size and out.image.size == size
    assert _where_red(out.image) == red
    assert out.taken_at == datetime(2023, 1, 2, 3, 4, 5)


# --- through the indexer ---------------------------------------------------------------------------


def _good_files(folder: Path) -> list[Path]:
    """One real file per new format this installation reads."""
    folder.mkdir()
    scene = _halves(96, 72)
    scene.save(folder / "a.jp2")
    scene.save(folder / "b.j2k")
    scene.save(folder / "c.ppm")
    scene.convert("L").save(folder / "d.pgm")
    scene.convert("1").save(folder / "e.pbm", format="PPM")
    (folder / "f.pnm").write_bytes(b"P3\n2 2\n255\n230 30 20 20 40 220\n230 30 20 20 40 220\n")
    (folder / "g.pgm").write_bytes(b"P5\n6 4\n65535\n" + np.full((4, 6), 50000, ">u2").tobytes())
    try:
        import pillow_heif  # noqa: F401
        import rawpy  # noqa: F401
    except ImportError:
        pass
    else:
        (folder / "h.dng").write_bytes(_dng(128, 96, 6))
        scene.save(folder / "i.heic", format="HEIF", quality=90)
    return sorted(folder.iterdir())


def test_a_folder_of_new_formats_is_indexed(tiny_settings: Settings, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    good = _good_files(folder)
    bad = {
        "junk.jp2": b"\x00\x00\x00\x0cjP  \r\n\x87\n" + bytes(40),
        "junk.ppm": b"P6\n64 48\n255\nxyz",
        "junk.pgm": b"not a picture",
        "junk.j2k": b"\xffO\xffQ" + bytes(10),
    }
    if ".dng" in SUPPORTED_SUFFIXES:
        bad |= {"junk.dng": b"II*\x00" + bytes(60), "junk.nef": b"nikon?", "junk.raf": b"FUJIFILM" + bytes(9)}
        bad |= {"junk.cr3": b"\x00\x00\x00\x18ftypcrx " + bytes(12), "cut.dng": _dng(128, 96)[:-100]}
    if ".heic" in SUPPORTED_SUFFIXES:
        bad |= {"junk.heic": b"\x00\x00\x00\x18ftypheic" + bytes(12)}
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    models = Models(tiny_settings)
    stores = open_stores(tiny_settings, models.facts(), models.clip.dim)
    try:
        report = index([folder], stores, models, captions=False)
        assert report.embedded == len(good) and report.seen == len(good) + len(bad)
        reasons = dict(report.skipped)
        assert set(reasons) == {str(folder / n) for n in bad}
        assert all(r and "\n" not in r for r in reasons.values()), reasons
        ids = {Path(p).name: f.id for p, f in stores.catalog.files_under([str(folder)]).items()}
        infos = stores.catalog.get(ids[g.name] for g in good)
        sizes = {Path(i.path).name: (i.width, i.height) for i in infos.values()}
        assert sizes["a.jp2"] == (96, 72) and sizes["g.pgm"] == (6, 4)
        if "h.dng" in sizes:
            assert sizes["h.dng"] == (96, 128)
    finally:
        stores.close()
