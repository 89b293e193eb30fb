"""The text reader on real rendered pictures: a tilted sign on a noisy background reads as its
words in reading order, a picture without text reads as None without running recognition, and
the engine stays unloaded until the first read. No timings here: speed is the evaluation's job
(`python -m imgsearch.evaluation.ocr`)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from imgsearch import ocr
from imgsearch.errors import ConfigError
from imgsearch.ocr import TextReader, load_reader


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return load_reader()


def _noisy(size: tuple[int, int], seed: int) -> Image.Image:
    """A cluttered photo-like background: gradient, soft blobs and bars, sensor noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    ramp = np.linspace(0.0, 1.0, w)[None, :, None]
    base = np.array([90, 120, 150]) + ramp * np.array([80, 30, -60])
    img = Image.fromarray(np.broadcast_to(base, (h, w, 3)).clip(0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img, "RGBA")
    for _ in range(8):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(20, min(w, h) // 3))
        d.ellipse((x - r, y - r, x + r, y + r), fill=(*map(int, rng.integers(0, 256, 3)), 140))
    d.rectangle((0, h - h // 6, w, h), fill=(60, 50, 40, 160))
    img = img.filter(ImageFilter.GaussianBlur(2))
    noise = rng.normal(0, 12, (h, w, 3))
    return Image.fromarray((np.asarray(img, float) + noise).clip(0, 255).astype(np.uint8))


def _draw_lines(img: Image.Image, lines: list[tuple[str, tuple[int, int]]], size: int,
                angle: float = 0.0, fill=(255, 255, 255), stroke=(20, 20, 20)) -> Image.Image:
    """Text drawn on a transparent layer, tilted by `angle` degrees about the picture's centre."""
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    font = ImageFont.load_default(size=size)
    for text, xy in lines:
        d.text(xy, text, font=font, fill=(*fill, 255), stroke_width=2, stroke_fill=(*stroke, 255))
    layer = layer.rotate(angle, resample=Image.BICUBIC)
    out = img.convert("RGB").copy()
    out.paste(layer, (0, 0), layer)
    return out


def _cafe(angle: float = 10.0, size: tuple[int, int] = (800, 600), scale: float = 1.0) -> Image.Image:
    k = scale
    return _draw_lines(_noisy(size, seed=7), [("CAFE MOZART", (int(170 * k), int(210 * k))),
                                               ("Open daily", (int(170 * k), int(300 * k)))],
                       size=int(64 * k), angle=angle)


def _lines(text: str | None) -> list[str]:
    assert text is not None
    return [line.lower() for line in text.splitlines()]


def test_importing_the_module_loads_no_engine() -> None:
    code = ("import sys, imgsearch.ocr as o; r = o.load_reader(); "
            "print(sorted(m for m in ('rapidocr_onnxruntime', 'cv2', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_reads_a_tilted_sign_on_a_noisy_background(reader: TextReader) -> None:
    assert _lines(reader.read(_cafe(angle=10.0))) == ["cafe mozart", "open daily"]
    assert _lines(reader.read(_cafe(angle=-10.0))) == ["cafe mozart", "open daily"]


def test_words_keep_their_case(reader: TextReader) -> None:
    assert reader.read(_cafe(angle=0.0)) == "CAFE MOZART\nOpen daily"


def test_a_picture_without_text_is_none_and_skips_recognition(
        reader: TextReader, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = reader._get_engine()
    calls = []
    real = engine.text_rec
    monkeypatch.setattr(engine, "text_rec", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert reader.read(_noisy((800, 600), seed=3)) is None
    assert reader.read(Image.new("RGB", (640, 480), (200, 200, 200))) is None
    assert calls == []  # detection found nothing, so recognition never ran
    assert reader.read(_cafe()) is not None and calls == [1]


def test_reading_order_top_to_bottom_then_left_to_right(reader: TextReader) -> None:
    img = _draw_lines(_noisy((900, 600), seed=5), [
        ("SOUTH", (330, 420)), ("RIGHT", (640, 240)), ("NORTH", (330, 60)), ("LEFT", (60, 240)),
    ], size=56)
    assert _lines(reader.read(img)) == ["north", "left right", "south"]


def test_big_pictures_are_shrunk_before_reading(reader: TextReader) -> None:
    big = _cafe(size=(4000, 3000), scale=5.0)
    assert _lines(reader.read(big)) == ["cafe mozart", "open daily"]


def test_other_image_modes(reader: TextReader) -> None:
    sign = Image.new("RGBA", (640, 240), (0, 0, 0, 0))  # black text on a transparent picture
    ImageDraw.Draw(sign).text((40, 80), "Bakery Station", font=ImageFont.load_default(size=56),
                              fill=(0, 0, 0, 255))
    assert _lines(reader.read(sign)) == ["bakery station"]  # transparency is shown as white
    assert _lines(reader.read(_cafe(angle=0).convert("L"))) == ["cafe mozart", "open daily"]
    assert _lines(reader.read(_cafe(angle=0).convert("P"))) == ["cafe mozart", "open daily"]
    assert reader.read(Image.new("RGB", (10, 10), (255, 0, 0))) is None


def test_the_cheap_first_look_still_reads_big_text() -> None:
    gated = TextReader(gate_side=320)
    assert "gate320" in gated.id
    assert _lines(gated.read(_cafe())) == ["cafe mozart", "open daily"]
    assert gated.read(_noisy((800, 600), seed=3)) is None


def test_concurrent_reads_agree(reader: TextReader) -> None:
    pictures = [_cafe(), _noisy((800, 600), seed=3)] * 3
    with ThreadPoolExecutor(max_workers=3) as pool:
        texts = list(pool.map(reader.read, pictures))
    assert texts == [reader.read(p) for p in pictures]


def test_id_names_engine_version_models_and_settings(reader: TextReader) -> None:
    from importlib.metadata import version

    assert reader.id.startswith(f"rapidocr-onnxruntime-{version('rapidocr-onnxruntime')}:")
    assert "ch_PP-OCRv4_det_infer" in reader.id and "ch_PP-OCRv4_rec_infer" in reader.id
    assert TextReader(det_side=512).id != reader.id
    assert TextReader(min_score=0.5).id != reader.id
    assert TextReader(threads=1).id == reader.id  # threads change speed, not what is read


def test_threads_default_to_the_usable_cores_up_to_four() -> None:
    assert load_reader().threads == min(4, ocr._usable_cpus())
    assert load_reader(threads=1).threads == 1
    with pytest.raises(ValueError):
        load_reader(threads=0)


def test_missing_engine_is_a_config_error_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ocr, "_package_dir", lambda: None)
    with pytest.raises(ConfigError, match="pip install 'rapidocr-onnxruntime"):
        load_reader()


def _box(cx: float, cy: float, w: float, h: float, slope: float) -> list[tuple[float, float]]:
    """Corners (clockwise from top left) of a w x h box centred on (cx, cy), tilted by `slope`."""
    n = (1 + slope * slope) ** 0.5
    ux, uy = 1 / n, slope / n  # along the line
    vx, vy = -uy, ux  # down the line
    return [(cx + sx * w / 2 * ux + sy * h / 2 * vx, cy + sx * w / 2 * uy + sy * h / 2 * vy)
            for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))]


@pytest.mark.parametrize("slope", [-0.27, 0.0, 0.27])  # about ±15°
def test_layout_of_a_tilted_paragraph(slope: float) -> None:
    """A long first line and a short second one, tilted either way: the centre of the long line
    lies below (or above) the short one's, yet it is read first. Two boxes on one line join."""
    def at(x: float, y0: float) -> float:
        return y0 + slope * x

    lines = [
        ocr._line(_box(60, at(60, 140), 100, 30, slope), "Open", 0.9),
        ocr._line(_box(330, at(330, 100), 600, 30, slope), "Grand Hotel Central Station", 0.9),
        ocr._line(_box(190, at(190, 140), 120, 30, slope), "daily", 0.9),
    ]
    assert ocr._layout(lines) == "Grand Hotel Central Station\nOpen daily"
    assert ocr._layout([]) is None
