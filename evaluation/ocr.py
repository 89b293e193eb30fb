"""How well the text reader (`imgsearch.ocr`) reads words off pictures, and what it costs.

`build_text_collection` draws photo-like pictures (gradients, noise, shapes, sometimes a sign
plate) with 1-3 lines of real words rendered in several fonts, sizes, colours and rotations up to
±15°, and about a quarter with no text at all; the manifest records what was written, so the
scores follow from the drawing, never from a hand label. `ocr_scores` reads every picture and
reports word recall, false text on the pictures without any, and how fast each kind goes: a
picture without text should pay for detection only, so it must be much faster (issue 16's target
is ≥ 5×) than one whose lines are also recognised.

`python -m imgsearch.evaluation.ocr OUT_DIR --n 60` writes the collection to OUT_DIR and prints a
short markdown report (also saved as OUT_DIR/ocr.md and ocr.json).

Fonts: Pillow's own (`ImageFont.load_default(size=...)`) always, plus any TrueType/OpenType fonts
under /usr/share/fonts; the same seed gives the same collection on machines with the same fonts."""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

MANIFEST = "ocr_manifest.json"
NO_TEXT_SHARE = 0.25
FONT_DIRS = (Path("/usr/share/fonts"),)
DEFAULT_FONT = "pillow-default"
# Fonts without Latin letters (or with letters nobody reads as such) would make the drawing lie.
_SKIP_FONT = re.compile(r"math|symbol|emoji|dingbat|icon|wingding|webdings", re.IGNORECASE)
_MIN_CONTRAST = 60  # luma between text and plate: hard to read is fine, illegible is not
_SIZES = ((640, 480), (800, 600), (1024, 768), (768, 1024), (1280, 960), (600, 800))

# Real English and Latin words of four letters or more: what signs, menus and screenshots say.
_WORDS = """
bakery bread coffee espresso menu daily open closed fresh market station hotel garden street museum
pizza pasta salad soup dessert cheese butter honey apple lemon orange tomato onion garlic pepper
sugar water juice wine beer drinks lunch dinner breakfast kitchen restaurant grill burger sandwich
chicken fish salmon steak price special today tomorrow welcome entrance exit parking ticket tickets
platform train airport harbour bridge river forest mountain valley island beach north south east
west city centre center town village square park library school church castle palace tower gallery
theatre cinema music concert festival summer winter spring autumn morning evening night hours
monday tuesday friday saturday sunday please thank push pull stop slow danger caution warning
private public office bank pharmacy hospital doctor police post mail shop store sale discount
offer free wifi phone email contact address number order delivery takeaway service quality
vintage classic modern urban royal grand little golden silver green black white purple yellow
brown happy lucky sweet spicy hot cold warm dream light house home room floor level gate door
window table chair kitchen travel journey photo camera screen login password settings download
upload search result folder files report total amount invoice balance account update version
lorem ipsum dolor amet consectetur adipiscing elit sed tempor labore dolore magna aliqua veniam
quis nostrud exercitation ullamco laboris nisi aliquip commodo consequat aute irure reprehenderit
voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat proident sunt
culpa officia deserunt mollit anim laborum veritas terra aqua porta forum villa nova vita
via roma pax lux domus hortus caelum mare sol luna stella fortuna gloria memoria
"""
VOCABULARY = tuple(dict.fromkeys(w for w in _WORDS.split() if len(w) >= 4))


@dataclass(frozen=True)
class TextPicture:
    """One picture of the collection and what was written on it (no lines: no text)."""

    name: str
    lines: tuple[str, ...]
    font: str = ""
    size: int = 0  # font size in pixels
    angle: float = 0.0  # degrees, counter-clockwise
    plate: bool = False  # drawn on a sign plate rather than straight on the background

    @property
    def words(self) -> list[str]:
        return [w for line in self.lines for w in line.split()]

    def as_dict(self) -> dict:
        return {"words": self.words, "lines": list(self.lines), "font": self.font, "size": self.size,
                "angle": self.angle, "plate": self.plate}


@dataclass(frozen=True)
class TextCollection:
    folder: Path
    seed: int
    pictures: dict[str, TextPicture]  # file name -> what it shows

    def path(self, name: str) -> Path:
        return self.folder / name


def available_fonts(dirs: Sequence[Path] | None = None) -> list[str]:
    """Pillow's default font first, then every usable TTF/OTF under `dirs` (default FONT_DIRS),
    sorted, so a seed picks the same fonts on machines that have the same ones."""
    found: list[str] = [DEFAULT_FONT]
    for d in FONT_DIRS if dirs is None else dirs:
        if not d.is_dir():
            continue
        for p in sorted(d.rglob("*")):
            if p.suffix.lower() in (".ttf", ".otf") and not _SKIP_FONT.search(p.name):
                try:
                    ImageFont.truetype(str(p), 12)
                except OSError:  # unreadable or not a font after all
                    continue
                found.append(str(p))
    return found


def _font(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if name == DEFAULT_FONT:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(name, size)


def _rand_colour(rng: random.Random) -> tuple[int, int, int]:
    return (rng.randrange(256), rng.randrange(256), rng.randrange(256))


def _luma(c: Sequence[float]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def _background(rng: random.Random, w: int, h: int) -> Image.Image:
    """Photo-like clutter: a two-colour gradient in a random direction, soft shapes and lines,
    then sensor-like noise; never plain white."""
    a, b = np.array(_rand_colour(rng), float), np.array(_rand_colour(rng), float)
    theta = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:h, 0:w]
    t = (xs * math.cos(theta) + ys * math.sin(theta))
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    img = Image.fromarray((a + (b - a) * t[..., None]).clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img, "RGBA")
    for _ in range(rng.randint(3, 12)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        x1, y1 = x0 + rng.randint(20, w // 2), y0 + rng.randint(20, h // 2)
        fill = (*_rand_colour(rng), rng.randint(60, 220))
        kind = rng.random()
        if kind < 0.4:
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif kind < 0.7:
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        elif kind < 0.85:
            pts = [(rng.randrange(w), rng.randrange(h)) for _ in range(rng.randint(3, 6))]
            draw.polygon(pts, fill=fill)
        else:
            draw.line((x0, y0, x1, y1), fill=fill, width=rng.randint(2, 10))
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3.0)))
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0, rng.uniform(3, 14), (h, w, 3))
    return Image.fromarray((np.asarray(img, float) + noise).clip(0, 255).astype(np.uint8), "RGB")


def _word_case(rng: random.Random, word: str) -> str:
    r = rng.random()
    return word.upper() if r < 0.35 else word.capitalize() if r < 0.7 else word


def _sample_lines(rng: random.Random) -> tuple[str, ...]:
    style = rng.random()  # one case style per picture most of the time, as on a real sign
    lines = []
    for _ in range(rng.randint(1, 3)):
        words = [rng.choice(VOCABULARY) for _ in range(rng.randint(1, 4))]
        if style < 0.3:
            words = [w.upper() for w in words]
        elif style < 0.5:
            words = [w.capitalize() for w in words]
        elif style < 0.7:
            words = [_word_case(rng, w) for w in words]
        lines.append(" ".join(words))
    return tuple(lines)


def _text_block(lines: Sequence[str], font, fill, stroke: tuple[int, tuple] | None,
                plate: tuple[int, int, int] | None) -> Image.Image:
    """The lines drawn on a transparent (or plate-coloured) tile, left-aligned like a sign."""
    probe = ImageDraw.Draw(Image.new("RGBA", (1, 1)))
    sw = stroke[0] if stroke else 0
    boxes = [probe.textbbox((0, 0), line, font=font, stroke_width=sw) for line in lines]
    asc, desc = font.getmetrics() if hasattr(font, "getmetrics") else (boxes[0][3], 0)
    step = int((asc + desc) * 1.25) + 2 * sw
    width = max(b[2] for b in boxes)
    pad = max(6, step // 3)
    tile = Image.new("RGBA", (width + 2 * pad, step * len(lines) + 2 * pad),
                     (*plate, 255) if plate else (0, 0, 0, 0))
    d = ImageDraw.Draw(tile)
    for i, line in enumerate(lines):
        d.text((pad, pad + i * step), line, font=font, fill=(*fill, 255),
               stroke_width=sw, stroke_fill=(*stroke[1], 255) if stroke else None)
    return tile


def _draw_text(rng: random.Random, img: Image.Image, lines: Sequence[str], fonts: Sequence[str],
               name: str) -> TextPicture:
    w, h = img.size
    # Pillow's own font a quarter of the time, so it is not drowned by many system fonts
    font_name = fonts[0] if len(fonts) == 1 or rng.random() < 0.25 else rng.choice(fonts[1:])
    # log-uniform from small print to a headline: 12..53 px on a 480-px short side, 24..106 on 960
    size = int(min(w, h) * math.exp(rng.uniform(math.log(0.025), math.log(0.11))))
    angle = round(rng.uniform(-15.0, 15.0), 1)
    use_plate = rng.random() < 0.35
    plate = _rand_colour(rng) if use_plate else None
    while True:
        font = _font(font_name, size)
        # A contrasting colour: against the plate, or against a background that varies, so a
        # dark or light stroke is added half the time when the text sits straight on it.
        under = plate if plate else tuple(np.asarray(img, float).reshape(-1, 3).mean(0))
        dark = _luma(under) > 128
        base = rng.randint(0, 70) if dark else rng.randint(185, 255)
        fill = tuple(max(0, min(255, base + rng.randint(-40, 40))) for _ in range(3))
        if abs(_luma(fill) - _luma(under)) < _MIN_CONTRAST:  # a mid-grey plate: go to the end
            fill = (rng.randint(0, 30),) * 3 if dark else (rng.randint(225, 255),) * 3
        stroke = None
        if not plate and rng.random() < 0.5:
            stroke = (max(1, size // 18), (255, 255, 255) if dark else (0, 0, 0))
        tile = _text_block(lines, font, fill, stroke, plate)
        rotated = tile.rotate(angle, resample=Image.BICUBIC, expand=True)
        if rotated.width <= w and rotated.height <= h and (
                (rotated.width <= w * 0.95 and rotated.height <= h * 0.95) or size <= 8):
            break  # it fits (the manifest must not list words drawn off the picture)
        size = max(1, int(size * 0.85))
    x = rng.randint(0, max(0, w - rotated.width))
    y = rng.randint(0, max(0, h - rotated.height))
    if not plate and not stroke:
        # no plate and no stroke: keep the patch under the text on the readable side
        region = img.crop((x, y, x + rotated.width, y + rotated.height))
        shade = Image.new("RGB", region.size, (235, 235, 235) if _luma(fill) < 128 else (25, 25, 25))
        img.paste(Image.blend(region, shade, 0.55), (x, y))
    img.paste(rotated, (x, y), rotated)
    return TextPicture(name=name, lines=tuple(lines), font=Path(font_name).stem, size=size,
                       angle=angle, plate=use_plate)


def build_text_collection(folder: Path, n: int, seed: int) -> TextCollection:
    """Write `n` pictures (about a quarter without text) and `ocr_manifest.json` into `folder`.
    The same seed and fonts give the same pictures."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    fonts = available_fonts()
    no_text = set(rng.sample(range(n), round(n * NO_TEXT_SHARE)))
    pictures: dict[str, TextPicture] = {}
    for i in range(n):
        name = f"text_{i:04d}.jpg"
        w, h = rng.choice(_SIZES)
        img = _background(rng, w, h)
        if i in no_text:
            pic = TextPicture(name=name, lines=())
        else:
            pic = _draw_text(rng, img, _sample_lines(rng), fonts, name)
        img.save(folder / name, quality=rng.randint(80, 95))
        pictures[name] = pic
    manifest = {"seed": seed, "pictures": {k: v.as_dict() for k, v in pictures.items()}}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return TextCollection(folder, seed, pictures)


def load_text_collection(folder: Path) -> TextCollection:
    data = json.loads((folder / MANIFEST).read_text())
    pictures = {
        name: TextPicture(name=name, lines=tuple(p["lines"]), font=p["font"], size=p["size"],
                          angle=p["angle"], plate=p["plate"])
        for name, p in data["pictures"].items()
    }
    return TextCollection(folder, data["seed"], pictures)


# ---------------------------------------------------------------------------------------------
# scoring


class Reader(Protocol):
    id: str

    def read(self, image: Image.Image) -> str | None: ...


_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)


def tokens(text: str | None) -> list[str]:
    """Words of a read text, lower-cased; anything that is not a letter or digit separates."""
    return [t.lower() for t in _TOKEN.findall(text or "")]


def words_found(written: Sequence[str], text: str | None) -> int:
    """How many of the written words the text holds (case-insensitive; a word written twice must
    be read twice)."""
    want = Counter(w.lower() for w in written)
    got = Counter(tokens(text))
    return sum((want & got).values())


@dataclass
class OcrScores:
    reader: str
    pictures: int
    text_pictures: int
    words: int
    words_found: int
    no_text_pictures: int
    false_text: int  # no-text pictures the reader found text on
    extra_tokens: int  # tokens read on text pictures that were not written there
    tokens_read: int
    seconds_text: float  # reading time, pictures with text
    seconds_no_text: float
    by_size: dict[str, tuple[int, int]] = field(default_factory=dict)  # font px -> (found, words)
    by_angle: dict[str, tuple[int, int]] = field(default_factory=dict)
    by_length: dict[str, tuple[int, int]] = field(default_factory=dict)  # letters -> (found, words)
    misses: list[dict] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.words_found / self.words if self.words else 0.0

    @property
    def recall_4plus(self) -> float:
        """Recall over words of four letters or more (the collection writes only those)."""
        cells = [v for k, v in self.by_length.items() if not k.startswith("<")]
        words = sum(v[1] for v in cells)
        return sum(v[0] for v in cells) / words if words else 0.0

    @property
    def false_text_rate(self) -> float:
        return self.false_text / self.no_text_pictures if self.no_text_pictures else 0.0

    @property
    def text_per_s(self) -> float:
        return self.text_pictures / self.seconds_text if self.seconds_text else 0.0

    @property
    def no_text_per_s(self) -> float:
        return self.no_text_pictures / self.seconds_no_text if self.seconds_no_text else 0.0

    @property
    def speed_ratio(self) -> float:
        return self.no_text_per_s / self.text_per_s if self.text_per_s else 0.0

    def as_dict(self) -> dict:
        return {
            "reader": self.reader, "pictures": self.pictures, "text_pictures": self.text_pictures,
            "words": self.words, "words_found": self.words_found, "recall": self.recall,
            "recall_4plus": self.recall_4plus,
            "no_text_pictures": self.no_text_pictures, "false_text": self.false_text,
            "false_text_rate": self.false_text_rate, "tokens_read": self.tokens_read,
            "extra_tokens": self.extra_tokens, "text_per_s": self.text_per_s,
            "no_text_per_s": self.no_text_per_s, "speed_ratio": self.speed_ratio,
            "by_size": self.by_size, "by_angle": self.by_angle, "by_length": self.by_length,
            "misses": self.misses,
        }


def _low_end(label: str) -> float:
    """Where a `_bucket` label starts, to list the buckets in order."""
    if label.startswith("<"):
        return float("-inf")
    return float(re.findall(r"\d+", label)[0])


def _bucket(value: float, edges: Sequence[int], unit: str) -> str:
    lo = None
    for e in edges:
        if value < e:
            return f"< {e}{unit}" if lo is None else f"{lo}–{e - 1}{unit}"
        lo = e
    return f"≥ {lo}{unit}"


def ocr_scores(collection: TextCollection, reader: Reader, *, warmup: bool = True) -> OcrScores:
    """Read every picture of `collection`; only the reading is timed, not the decoding."""
    def decoded(name: str) -> Image.Image:
        with Image.open(collection.path(name)) as im:
            return im.convert("RGB")

    if warmup and collection.pictures:  # the engine is made on the first read: not a picture's cost
        reader.read(decoded(next(iter(collection.pictures))))
    s = OcrScores(reader=reader.id, pictures=len(collection.pictures), text_pictures=0, words=0,
                  words_found=0, no_text_pictures=0, false_text=0, extra_tokens=0, tokens_read=0,
                  seconds_text=0.0, seconds_no_text=0.0)
    size_b: dict[str, list[int]] = {}
    angle_b: dict[str, list[int]] = {}
    length_b: dict[str, list[int]] = {}
    for name, pic in collection.pictures.items():
        image = decoded(name)
        t0 = time.perf_counter()
        text = reader.read(image)
        dt = time.perf_counter() - t0
        if not pic.lines:
            s.no_text_pictures += 1
            s.seconds_no_text += dt
            if text is not None:
                s.false_text += 1
                s.misses.append({"file": name, "written": "", "read": text})
            continue
        s.text_pictures += 1
        s.seconds_text += dt
        found = words_found(pic.words, text)
        read = tokens(text)
        s.words += len(pic.words)
        s.words_found += found
        s.tokens_read += len(read)
        s.extra_tokens += sum((Counter(read) - Counter(w.lower() for w in pic.words)).values())
        for key, table in ((_bucket(pic.size, (24, 36, 56), " px"), size_b),
                           (_bucket(abs(pic.angle), (5, 10), "°"), angle_b)):
            cell = table.setdefault(key, [0, 0])
            cell[0] += found
            cell[1] += len(pic.words)
        got = Counter(read)
        for w in pic.words:  # per word: found if the text still holds one not claimed before
            cell = length_b.setdefault(_bucket(len(w), (4, 6, 9), " letters"), [0, 0])
            cell[1] += 1
            if got[w.lower()] > 0:
                got[w.lower()] -= 1
                cell[0] += 1
        if found < len(pic.words):
            s.misses.append({"file": name, "written": "\n".join(pic.lines), "read": text,
                             "size": pic.size, "angle": pic.angle, "font": pic.font})
    s.by_size, s.by_angle, s.by_length = (
        {k: tuple(t[k]) for k in sorted(t, key=_low_end)} for t in (size_b, angle_b, length_b))
    return s


def _machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = ""
    flags = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                      if ln.startswith("model name")), "")
        flags = "avx512_bf16" if "avx512_bf16" in info else "no avx512_bf16"
    except OSError:
        pass
    return f"{cpus} CPUs, {model or 'unknown CPU'}, {flags}".strip(", ")


def markdown(s: OcrScores, machine: str) -> str:
    def pct(a: int, b: int) -> str:
        return f"{a / b:.1%}" if b else "–"

    def cells(table: dict[str, tuple[int, int]]) -> list[str]:
        return [f"{k} | {pct(*v)} ({v[0]}/{v[1]})" for k, v in table.items()]

    long_words = [v for k, v in s.by_length.items() if not k.startswith("<")]
    found4, words4 = sum(v[0] for v in long_words), sum(v[1] for v in long_words)
    out = [
        "## Words from pixels (OCR)",
        "",
        (f"Reader `{s.reader}` on {s.pictures} pictures ({s.text_pictures} with text, "
         f"{s.no_text_pictures} without); {machine}."),
        "",
        "| figure | value |",
        "|---|---|",
        f"| word recall | {pct(s.words_found, s.words)} ({s.words_found}/{s.words}) |",
        f"| word recall, words of 4+ letters | {pct(found4, words4)} ({found4}/{words4}) |",
        (f"| false text on no-text pictures | {pct(s.false_text, s.no_text_pictures)} "
         f"({s.false_text}/{s.no_text_pictures}) |"),
        (f"| read words not written (text pictures) | {pct(s.extra_tokens, s.tokens_read)} "
         f"({s.extra_tokens}/{s.tokens_read}) |"),
        f"| pictures/s with text | {s.text_per_s:.2f} |",
        f"| pictures/s without text | {s.no_text_per_s:.2f} |",
        f"| no-text speed ÷ text speed (target ≥ 5) | {s.speed_ratio:.1f}× |",
        "",
        "Recall by font size, rotation and word length:",
        "",
        "| font size | recall | rotation | recall | word length | recall |",
        "|---|---|---|---|---|---|",
    ]
    columns = [cells(s.by_size), cells(s.by_angle), cells(s.by_length)]
    for i in range(max(map(len, columns))):
        out.append("| " + " | ".join(c[i] if i < len(c) else " | " for c in columns) + " |")
    if s.misses:
        more = f", the first 10 of {len(s.misses)}" if len(s.misses) > 10 else ""
        out += ["", f"Pictures with a word missed or false text{more}:", ""]
        for m in s.misses[:10]:
            written = m["written"].replace("\n", " / ") or "(no text)"
            read = (m["read"] or "(nothing)").replace("\n", " / ")
            out.append(f"- `{m['file']}`: wrote “{written}”, read “{read}”")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m imgsearch.evaluation.ocr", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", type=Path, help="where the pictures, ocr.json and ocr.md go")
    p.add_argument("--n", type=int, default=60, help="pictures in the collection")
    p.add_argument("--seed", type=int, default=1616, help="collection seed")
    p.add_argument("--threads", type=int, default=None, help="reader threads (default: its own)")
    args = p.parse_args(argv)

    from imgsearch.errors import ImgsearchError
    from imgsearch.ocr import load_reader

    try:
        reader = load_reader() if args.threads is None else load_reader(threads=args.threads)
    except ImgsearchError as e:
        print(str(e), file=sys.stderr)
        return e.exit_code
    collection = build_text_collection(args.out_dir, args.n, args.seed)
    scores = ocr_scores(collection, reader)
    report = markdown(scores, _machine())
    (args.out_dir / "ocr.md").write_text(report)
    (args.out_dir / "ocr.json").write_text(json.dumps(
        {"seed": args.seed, "machine": _machine(), **scores.as_dict()}, indent=1))
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
