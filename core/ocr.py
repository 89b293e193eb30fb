"""Words from pixels: read the text in a picture (signs, menus, screenshots) at index time, so a
search for what a picture says finds it.

The engine is RapidOCR (`rapidocr-onnxruntime`): PP-OCRv4 detection and recognition models in
ONNX, shipped inside its wheel, so nothing is downloaded. Detection runs first, on a small copy of
the picture; recognition runs only on the lines it found, cut from a larger copy, so a picture
without text pays for detection alone and small print is still read from enough pixels.

Importing this module imports neither rapidocr, OpenCV nor onnxruntime; the engine is made on the
first read."""

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
REC_MODEL = "ch_PP-OCRv4_rec_infer.onnx"  # Chinese and Latin letters, digits, punctuation

# The settings below were measured with `python -m imgsearch.evaluation.ocr` (rendered signs,
# 12-106 px text, rotations up to 15°) on a 2-core EPYC; the figures are in issue 16's report.
#
# Detection cost grows with its pixels and dominates (a 640-px copy costs ~2.3x a 448-px one).
# At 448 px word recall was 0.97; 384 lost small print (0.93), 512/640 were no better and slower.
DET_SIDE = 448
# Recognition needs more pixels than detection: lines cut from the 448-px copy itself read 0.77
# of the words, from a 1024-px copy 0.97, and from 1600 px no more. Bigger pictures are shrunk
# to this first, so a decoder may hand over a picture of about this size.
MAX_SIDE = 1024
# Optional cheap first look at this size, stopping pictures without text before the full
# detection. Off: at 320 px textless pictures went only 1.4x faster (16.6 vs 11.9 a second) but
# recall fell 0.97 -> 0.84, half the words under 24 px lost: text under ~8 px at the look's scale
# is invisible to it. Even at 256 px (recall 0.71) they were not 5x faster than text pictures.
GATE_SIDE: int | None = None
# How far detection grows the text regions it finds (rapidocr's default 1.6 cuts lines so tight
# that the recogniser drops the spaces between words more often: 0.94 -> 0.97 recall at 448).
UNCLIP = 2.0
# Lines read with less confidence are dropped. Real lines scored 0.74-1.0; what detection finds
# in clutter is read as one or two junk characters (0.1-0.84), which the two-letter rule drops.
MIN_SCORE = 0.65
MIN_CHARS = 2  # letters or digits a line needs to be kept
# Lines are widened by this much before recognition. The recogniser (trained mostly on square
# Chinese characters) runs narrow Latin words together, "CAFEMOZART"; wider, it sees the spaces:
# recall 0.93 -> 0.97 on a fresh collection, the words run together halved; 1.1 and 1.4 did worse.
STRETCH = 1.25
# Intra-op threads per model. The sessions never spin-wait (ONNX Runtime's default busy-waits
# between ops): with spinning, 2 threads on a busy 2-core machine ran at half the speed of 1.
MAX_THREADS = 4

_ALNUM = re.compile(r"[^\W_]", re.UNICODE)


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """All usable cores up to MAX_THREADS: 2 on the 2-core machines the product runs on."""
    return min(MAX_THREADS, _usable_cpus())


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec(_MODULE)  # finds the package without importing it
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _not_installed(detail: str) -> ConfigError:
    return ConfigError(
        f"Reading text in pictures needs {ENGINE} ({detail}). Install it into imgsearch's "
        f"environment: pip install '{ENGINE}>=1.4.4,<2' (Python 3.12 or older; it brings its "
        "own models, nothing else is downloaded)."
    )


@dataclass(frozen=True)
class _Line:
    text: str
    score: float
    cx: float  # centre
    cy: float
    height: float
    slope: float  # dy/dx of the box's top edge, for tilted text


class TextReader:
    """Reads the text of a picture: `read(image)` gives its lines in reading order (top to bottom,
    left to right) joined by "\\n", or None when it holds no text worth keeping.

    `id` names the engine, its version, the models and every setting that changes what is read,
    so the catalog re-reads texts when any of them changes. `max_side` is the largest picture side
    the reader uses (a decoder need not produce more). Thread-safe: the engine is made once, on
    the first read, and its ONNX sessions take concurrent calls."""

    def __init__(self, *, det_side: int = DET_SIDE, max_side: int = MAX_SIDE,
                 gate_side: int | None = GATE_SIDE, min_score: float = MIN_SCORE,
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
            raise ValueError("need 32 <= det_side <= max_side and gate_side >= 32")
        if threads is not None and threads < 1:
            raise ValueError("threads must be at least 1")
        self.det_side = det_side
        self.max_side = max_side
        self.gate_side = gate_side if gate_side and gate_side < det_side else None
        self.min_score = min_score
        self.threads = threads if threads is not None else default_threads()
        # The angle classifier only tells upright lines from upside-down ones: tilts up to 15°
        # read without it, and with it recall fell (0.97 -> 0.94; it flipped some upright lines).
        self.use_angle_cls = use_angle_cls
        gate = f"gate{self.gate_side}/" if self.gate_side else ""
        self.id = (f"{ENGINE}-{version}:{Path(DET_MODEL).stem}+{Path(REC_MODEL).stem}"
                   f"{'+cls' if use_angle_cls else ''}:{gate}det{det_side}/max{max_side}"
                   f"/unclip{UNCLIP:g}/stretch{STRETCH:g}/min{min_score:g}")
        self._engine: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"TextReader({self.id!r}, threads={self.threads})"

    # -- engine ----------------------------------------------------------------------------

    def _get_engine(self) -> Any:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._make_engine()
        return self._engine

    def _make_engine(self) -> Any:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as e:  # OpenCV, onnxruntime or a system library missing
            raise _not_installed(f"it cannot be imported: {e}") from e
        engine = RapidOCR(
            det_model_path=str(self._models / DET_MODEL),
            rec_model_path=str(self._models / REC_MODEL),
            use_cls=self.use_angle_cls,
            # rapidocr's default ("min", 736) enlarges every picture to 736 px on its short side
            # before detection; "max" keeps our small copy as it is
            det_limit_type="max",
            det_limit_side_len=self.det_side,
            det_unclip_ratio=UNCLIP,
            intra_op_num_threads=self.threads,
            inter_op_num_threads=1,  # the models are chains of ops: nothing to run side by side
            print_verbose=False,
        )
        # rapidocr cannot turn spin-waiting off, so its two sessions are replaced by ours
        for holder, model in ((engine.text_det.infer, DET_MODEL), (engine.text_rec.session, REC_MODEL)):
            holder.session = self._session(self._models / model)
        return engine

    def _session(self, model: Path) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.enable_cpu_mem_arena = False  # shapes change with every picture: no arena to grow
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
        return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])

    # -- reading ---------------------------------------------------------------------------

    def read(self, image: Image.Image) -> str | None:
        """The text in `image`, lines in reading order joined by "\\n" (words as recognised), or
        None when there is none (or only low-confidence junk)."""
        import numpy as np

        engine = self._get_engine()
        full = _fit(_rgb(image), self.max_side)
        det_img = _fit(full, self.det_side)
        if self.gate_side and max(det_img.size) > self.gate_side:
            gate_boxes, _ = engine.text_det(_bgr(_fit(det_img, self.gate_side)))
            if gate_boxes is None or len(gate_boxes) == 0:
                return None
        det_bgr = _bgr(det_img)
        boxes, _ = engine.text_det(det_bgr)
        if boxes is None or len(boxes) == 0:
            return None  # no text found: recognition never runs
        sx, sy = full.width / det_bgr.shape[1], full.height / det_bgr.shape[0]
        boxes = np.asarray(boxes, dtype=np.float32) * np.array([sx, sy], dtype=np.float32)
        full_bgr = det_bgr if full is det_img else _bgr(full)
        crops = [_widen(c, STRETCH) for c in engine.get_crop_img_list(full_bgr, list(boxes))]
        if self.use_angle_cls:
            crops, _, _ = engine.text_cls(crops)
        recognised, _ = engine.text_rec(crops)
        lines = []
        for box, (text, score, *_) in zip(boxes, recognised):
            text = " ".join(str(text).split())
            if float(score) >= self.min_score and len(_ALNUM.findall(text)) >= MIN_CHARS:
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
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
            image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.getchannel("A"))
        return white
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        import numpy as np

        a = np.asarray(image, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) * (255.0 / (hi - lo or 1.0))
        return Image.fromarray(a.clip(0, 255).astype(np.uint8)).convert("RGB")
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


def _widen(crop: np.ndarray, factor: float) -> np.ndarray:
    import cv2  # loaded with rapidocr already

    h, w = crop.shape[:2]
    return cv2.resize(crop, (max(1, round(w * factor)), h), interpolation=cv2.INTER_CUBIC)


def _line(box: Any, text: str, score: float) -> _Line:
    """A recognised line placed by its box (corners clockwise from the top left)."""
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
