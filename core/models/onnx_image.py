"""CLIP's image tower as exported by `image_export`, run with onnxruntime, and what `imgsearch
status` says about it. Nothing here imports torch: status reads the records without loading a
model, and the tower itself is a plain function of preprocessed pixels."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.models.text_export import read_meta_file, text_tower_status

FOLDER = "image-encoder"  # in the index folder, beside the text export (`text_export.FOLDER`)
META = "meta.json"  # what was built and how each variant fared in the admission check
CHOICE = "choice.json"  # what the last process that embedded pictures used, and why
FORMAT = 1
# The ONNX variants, by the name the setting IMGSEARCH_IMAGE_RUNTIME uses; "torch" is open_clip
# itself in the profile's runtime (fp32 on a CPU without fast bf16).
VARIANTS = {"onnx": "fp32.onnx", "onnx-int8": "int8.onnx"}
RUNTIMES = ("torch", *VARIANTS)
# BLIP's vision towers (`blip_vision`), under the same setting: one folder per model role
BLIP_FOLDER = "blip-vision"
BLIP_ROLES = ("captioner", "itm")


def export_folder(index_dir: Path) -> Path:
    return Path(index_dir) / FOLDER


def read_meta(index_dir: Path) -> dict[str, Any] | None:
    return read_meta_file(export_folder(index_dir) / META, (FORMAT,))


class OnnxImageTower:
    """One exported tower's session: preprocessed pixels (N, 3, H, W) float32 -> its output as
    float32 (CLIP: L2-normalised vectors (N, dim), the normalisation being part of the graph;
    BLIP's vision towers: states (N, tokens, width), `blip_vision`)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), session_options(),
                                                    providers=["CPUExecutionProvider"])

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        return self.session.run(None, {"pixels": pixels})[0].astype(np.float32, copy=False)


def session_options() -> Any:
    """For indexing, unlike the cold query's (`onnx_text.session_options`): a long-lived session
    that embeds batch after batch, so the weights are pre-packed once (onnxruntime's default) and
    the threads may spin between operators; one thread per physical core, as torch is given."""
    import onnxruntime
    from imgsearch.models.onnx_text import physical_cores

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = physical_cores()
    options.inter_op_num_threads = 1
    return options


def write_choice(folder: Path, choice: dict[str, Any]) -> None:
    """Record the runtime a process chose for the tower exported in `folder` (atomically: the
    service and a CLI may both write)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".choice-", dir=folder)
        with os.fdopen(fd, "w") as fh:
            json.dump(choice, fh)
        os.replace(tmp, folder / CHOICE)
    except OSError:
        pass  # a read-only index folder costs only the status line


def image_runtime_status(index_dir: Path, setting: str) -> dict[str, Any]:
    """For `imgsearch status`: the runtime the last picture embedding for this index used and
    why, with each ONNX variant's admission record. Read from files: no model is loaded."""
    out: dict[str, Any] = {"setting": setting, "chosen": None, "why": "no picture embedded with this index yet"}
    out.update(read_choice(export_folder(index_dir)) or {})
    blip = blip_vision_status(index_dir)
    if blip:
        out["blip_vision"] = blip
    text = text_tower_status(index_dir, setting)
    if text:
        out["text_tower"] = text  # CLIP's text tower: the export beside the index, fp32 or int8
    meta = read_meta(index_dir)
    if meta is not None:
        out["variants"] = {name: {k: v.get(k) for k in ("admitted", "why", "cos_min", "cos_mean", "top10")}
                           for name, v in meta.get("variants", {}).items()}
    return out


def describe(status: dict[str, Any]) -> str:
    """One line for the text status: `onnx-int8 (why); refused: onnx (why)`."""
    line = f"{status.get('chosen') or 'not chosen yet'} ({status.get('why')})"
    refused = [f"{n}: {v.get('why')}" for n, v in (status.get("variants") or {}).items() if not v.get("admitted")]
    return line + (f"; refused {'; '.join(refused)}" if refused else "")


def blip_vision_status(index_dir: Path) -> dict[str, Any]:
    """Per BLIP model that has run on this index, what ran its vision tower and why."""
    choices = {role: read_choice(Path(index_dir) / BLIP_FOLDER / role) for role in BLIP_ROLES}
    return {role: choice for role, choice in choices.items() if choice is not None}


def read_choice(folder: Path) -> dict[str, Any] | None:
    """What `write_choice` recorded in `folder` (runtime, why, when), or None if nothing readable."""
    try:
        choice = json.loads((folder / CHOICE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(choice, dict):
        return None
    read = {k: choice.get(k) for k in ("chosen", "why", "at")}
    if "decoder" in choice:  # the captioner's decoder, beside its int8 vision tower (`blip_decoder`)
        read["decoder"] = choice["decoder"]
    return read
