"""Words from pixels: read the text in a picture (signs, menus, screenshots) at index time, so a
search for what a picture says finds it.

The engine is RapidOCR (`rapidocr-onnxruntime`): PP-OCRv4 detection and recognition models in
ONNX, shipped inside its wheel, so nothing is downloaded. Detection runs first on a small copy of
the picture; recognition runs only on the boxes it found, cut from a larger copy, so a picture
without text pays for detection alone and small text is still read from enough pixels.

Importing this module imports neither rapidocr nor OpenCV; the engine is made on the first read."""

from __future__ import annotations

import importlib.util
import os
import re
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgsearch.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

ENGINE = "rapidocr-onnxruntime"
_MODULE = "rapidocr_onnxruntime"
DET_MODEL = "ch_PP-OCRv4_det_infer.onnx"
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"  # Chinese + Latin letters, digits and punctuation

# Measured on a rendered collection (evaluation/ocr.py) on a 2-core EPYC: see the report of
# issue 16. Detection on a 640-px copy keeps text from ~12 px up (on a 1280-px picture) and
# costs a fraction of the full size; recognition cuts its lines from a copy of up to 1600 px.
DET_SIDE = 512
GATE_SIDE = 320
UNCLIP = 2.0
MAX_SIDE = 1600
# A line whose recognition confidence is below this is dropped: real words score above 0.85,
# what detection finds in clutter (edges, stripes) is read as short junk scoring lower.
MIN_SCORE = 0.75
# Intra-op threads per model: enough to use a small machine, not so many that the engine
# fights the indexer's other work on a big one.
MAX_THREADS = 4

_ALNUM = re.compile(r"[^\W_]", re.UNICODE)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """All usable cores up to MAX_THREADS (2 on the 2-core machines the product runs on)."""
    return min(MAX_THREADS, _usable_cpus())


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec(_MODULE)  # finds the package without importing it
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _not_installed(detail: str) -> ConfigError:
    return ConfigError(
        f"Reading text in pictures needs {ENGINE} ({detail}). Install it into imgsearch's "
        f"environment: pip install '{ENGINE}>=1.4,<2' (it brings its models; nothing else is "
        "downloaded)."
    )


@dataclass(frozen=True)
class _Line:
    text: str
    score: float
    cx: float  # centre
    cy: float
    height: float
    slope: float  # dy/dx of the box's top edge, for rotated text


class TextReader:
    """Reads the text of a picture: `read(image)` gives its lines in reading order (top to bottom,
    left to right) joined by "\\n", or None when it holds no text worth keeping.

    `id` names the engine, its version, the models and the settings that change what is read, so
    the catalog can re-read texts when any of them changes. Thread-safe: the engine is created
    once, on the first read, and the ONNX sessions run concurrent calls."""

    def __init__(self, *, det_side: int = DET_SIDE, gate_side: int | None = GATE_SIDE,
                 max_side: int = MAX_SIDE, min_score: float = MIN_SCORE,
                 threads: int | None = None, use_angle_cls: bool = False) -> None:
        pkg = _package_dir()
        if pkg is None:
            raise _not_installed("it is not installed")
        try:
            version = metadata.version(ENGINE)
        except metadata.PackageNotFoundError as e:
            raise _not_installed("its package metadata is missing") from e
        self._models = pkg / "models"
        missing = [m for m in (DET_MODEL, REC_MODEL) if not (self._models / m).is_file()]
        if missing:
            raise _not_installed(f"its models are missing: {', '.join(missing)}")
        if det_side < 32 or max_side < det_side or (gate_side is not None and gate_side < 32):
            raise ValueError("need 32 <= gate_side, 32 <= det_side <= max_side")
        self.det_side = det_side
        self.gate_side = gate_side if gate_side and gate_side < det_side else None
        self.max_side = max_side
        self.min_score = min_score
        self.threads = threads if threads is not None else default_threads()
        self.use_angle_cls = use_angle_cls
        self.id = (f"{ENGINE}-{version}:{Path(DET_MODEL).stem}+{Path(REC_MODEL).stem}"
                   f"{'+cls' if use_angle_cls else ''}:gate{self.gate_side or 0}/det{det_side}/max{max_side}"
                   f"/unclip{UNCLIP:g}/min{min_score:g}")
        self._engine: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TextReader({self.id!r}, threads={self.threads})"

    # -- engine ----------------------------------------------------------------------------

    def _get_engine(self) -> Any:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    try:
                        from rapidocr_onnxruntime import RapidOCR
                    except ImportError as e:  # e.g. OpenCV or onnxruntime broken or missing
                        raise _not_installed(f"it cannot be imported: {e}") from e
                    self._engine = RapidOCR(
                        det_model_path=str(self._models / DET_MODEL),
                        rec_model_path=str(self._models / REC_MODEL),
                        use_cls=self.use_angle_cls,
                        # rapidocr's default ("min", 736) enlarges every picture to 736 px on
                        # its short side before detection; "max" keeps our small copy's size
                        det_limit_type="max",
                        det_limit_side_len=self.det_side,
                        det_unclip_ratio=UNCLIP,
                        intra_op_num_threads=self.threads,
                        inter_op_num_threads=1,  # the models are chains: nothing to overlap
                        print_verbose=False,
                    )
        return self._engine

    # -- reading ---------------------------------------------------------------------------

    def read(self, image: Image.Image) -> str | None:
        """The text in `image`, lines in reading order joined by "\\n" (words as recognised), or
        None when there is none (or only low-confidence junk)."""
        import numpy as np

        engine = self._get_engine()
        full = _fit(_rgb(image), self.max_side)
        det_img = _fit(full, self.det_side)
        if self.gate_side and max(det_img.size) > self.gate_side:
            # the cheap look: most pictures hold no text and stop here
            gate_boxes, _ = engine.text_det(_bgr(_fit(det_img, self.gate_side)))
            if gate_boxes is None or len(gate_boxes) == 0:
                return None
        det_bgr = _bgr(det_img)
        boxes, _ = engine.text_det(det_bgr)
        if boxes is None or len(boxes) == 0:
            return None  # no text found: recognition is never run
        sx, sy = full.width / det_bgr.shape[1], full.height / det_bgr.shape[0]
        boxes = np.asarray(boxes, dtype=np.float32) * np.array([sx, sy], dtype=np.float32)
        full_bgr = _bgr(full) if full is not det_img else det_bgr
        crops = engine.get_crop_img_list(full_bgr, list(boxes))
        if self.use_angle_cls:
            crops, _, _ = engine.text_cls(crops)
        recognised, _ = engine.text_rec(crops)
        lines = []
        for box, (text, score, *_) in zip(boxes, recognised):
            text = " ".join(str(text).split())
            if float(score) < self.min_score or len(_ALNUM.findall(text)) < 2:
                continue
            lines.append(_line(box, text, float(score)))
        return _layout(lines)


def load_reader(**options: Any) -> TextReader:
    """The text reader with the measured settings (`options` override them, e.g. threads=1).
    Raises ConfigError, saying what to install, when rapidocr-onnxruntime is not there."""
    return TextReader(**options)


# -- helpers -------------------------------------------------------------------------------


def _rgb(image: Image.Image) -> Image.Image:
    """RGB, with transparency flattened onto white (how a viewer shows a screenshot or logo)."""
    from PIL import Image

    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        import numpy as np

        a = np.asarray(image, dtype=np.float32)
        hi = float(a.max()) or 1.0
        return Image.fromarray((a * (255.0 / hi)).clip(0, 255).astype(np.uint8)).convert("RGB")
    return image.convert("RGB")


def _fit(image: Image.Image, side: int) -> Image.Image:
    """`image` shrunk (never enlarged) so its longer side is at most `side`."""
    from PIL import Image

    w, h = image.size
    if max(w, h) <= side:
        return image
    scale = side / max(w, h)
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR,
                        reducing_gap=2.0)


def _bgr(image: Image.Image) -> np.ndarray:
    """OpenCV's channel order, at least 32 px a side (the detector's stride), edges repeated."""
    import numpy as np

    a = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    h, w = a.shape[:2]
    if h < 32 or w < 32:
        a = np.pad(a, ((0, max(0, 32 - h)), (0, max(0, 32 - w)), (0, 0)), mode="edge")
    return a


def _line(box: np.ndarray, text: str, score: float) -> _Line:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = [(float(x), float(y)) for x, y in box]
    dx = x1 - x0
    slope = (y1 - y0) / dx if abs(dx) > 1e-3 else 0.0
    height = ((x3 - x0) ** 2 + (y3 - y0) ** 2) ** 0.5
    return _Line(text, score, (x0 + x1 + x2 + x3) / 4, (y0 + y1 + y2 + y3) / 4, max(1.0, height),
                 slope)


def _layout(lines: list[_Line]) -> str | None:
    """Boxes into reading order: boxes on one (possibly tilted) text line joined by a space, left
    to right; lines top to bottom. A box belongs to a line when its centre is within half a text
    height of where the line, followed along its slope, passes at that x. Lines are ordered by
    where they cross the left edge along the picture's typical slope, so a tilted paragraph whose
    lines differ in length still reads top to bottom."""
    if not lines:
        return None
    slopes = sorted(b.slope for b in lines)
    slope = slopes[len(slopes) // 2]

    def top(b: _Line) -> float:
        return b.cy - slope * b.cx

    rows: list[list[_Line]] = []
    for ln in sorted(lines, key=top):
        for row in rows:
            ref = min(row, key=lambda b: abs(b.cx - ln.cx))
            expected = ref.cy + ref.slope * (ln.cx - ref.cx)
            if abs(ln.cy - expected) < 0.5 * min(ref.height, ln.height):
                row.append(ln)
                break
        else:
            rows.append([ln])
    rows.sort(key=lambda row: min(top(b) for b in row))
    text = "\n".join(" ".join(b.text for b in sorted(row, key=lambda b: b.cx)) for row in rows)
    return text or None
