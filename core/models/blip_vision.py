"""BLIP's vision towers (the captioner's and the ITM model's) through ONNX Runtime int8, admitted
by measurement, as CLIP's image tower is (`image_export`).

The vision tower is most of a caption (base BLIP: a ViT-B/16 over 577 tokens, ~110 GFLOP a
picture, ~70 % of the time against ~30 % for decoding 20 tokens) and nearly all of a rerank whose
vision states are not cached yet. Where torch runs fp32 (no fast bf16), ONNX Runtime's dynamic
int8 does the same products 2-4x faster (VNNI); where torch runs bf16 on AMX it is about as fast
as int8, and auto keeps torch unless the variant measured faster when it was built.

Only int8 is exported: ONNX Runtime's fp32 measured slower than torch's on this tower (16
pictures: 17.2 s against 14.5 s on a Xeon), and its 340 MB file would only cost disk. A variant is
used only once its states reproduce torch fp32's on calibration pictures (`admit_states`): the
cosine of every token's state to its fp32 twin, averaged per picture, at least 0.99 for each
picture and 0.995 on average — what cross-attention and the ITM head read; the states' CLS token,
which ITC projects, is reported beside it.

Each tower's export lives in the index folder, `blip-vision/<role>/`, named after the model id it
was made from. Built only for a run with at least IMGSEARCH_BLIP_EXPORT_MIN_PICTURES pictures to
caption (or to precompute rerank states for); a query never builds one, it uses what exists.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgsearch.errors import ConfigError
from imgsearch.models.blip_decoder import is_quantized, use_int8_decoder
from imgsearch.models.blip_decoder import measure as measure_decoder
from imgsearch.models.export_attention import swap_blip_vision_attention
from imgsearch.models.image_export import THRESHOLDS, build_lock, calibration_images, quantize, staged, timed
from imgsearch.models.onnx_image import BLIP_FOLDER, OnnxImageTower, read_choice, write_choice
from imgsearch.models.text_export import read_meta_file
from imgsearch.progress import waiting

log = logging.getLogger(__name__)

META, FORMAT = "meta.json", 1
VARIANT, FILE = "onnx-int8", "int8.onnx"
CALIBRATION = 16  # pictures: 8 shapes scenes, 8 photo-like; each costs a 384 px ViT-B/16 pass three ways
BATCH = 8  # the build's timing batches for torch (the int8 export is checked in calls of RUN_BATCH)
# Pictures per ONNX Runtime call when captioning or reranking: a small batch keeps the int8
# tower's activations in cache (base BLIP's ITM tower on a 2-core EPYC, 16 pictures, alternating:
# 132-159 ms a picture in calls of 2 or 4, 161-171 in calls of 16); torch's tower gained nothing.
RUN_BATCH = 4
FASTER = 1.2  # how much faster than torch int8 must have measured for auto to take it
CAPTION_TOKENS, BATCH_DECODE = 20, 16  # the decoder's check: the caption cap; all 16 calibration pictures


def export_folder(index_dir: Path, role: str) -> Path:
    return Path(index_dir) / BLIP_FOLDER / role


def read_meta(index_dir: Path, role: str) -> dict[str, Any] | None:
    return read_meta_file(export_folder(index_dir, role) / META, (FORMAT,))


class OnnxVisionModel(torch.nn.Module):
    """Stands in for transformers' `BlipVisionModel` (`model.vision_model = ...`): pixels in, an
    output whose `last_hidden_state` (and `[0]`, which BLIP's `generate` reads) are the states, in
    the dtype the rest of the model runs."""

    def __init__(self, path: Path, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype
        self.states = OnnxImageTower(path)  # pixels (numpy) -> states (numpy)

    def forward(self, pixel_values: torch.Tensor, **_: Any) -> Any:
        from transformers.modeling_outputs import BaseModelOutputWithPooling

        pixels = pixel_values.float().cpu().numpy()
        states = torch.cat([torch.from_numpy(self.states(pixels[i:i + RUN_BATCH])).to(self.dtype)
                            for i in range(0, len(pixels), RUN_BATCH)])
        return BaseModelOutputWithPooling(last_hidden_state=states, pooler_output=states[:, 0])


def use_onnx_vision(model: Any, processor: Any, runtime: Any, model_id: str, settings: Any, role: str,
                    pictures: int) -> str:
    """Put the admitted int8 tower in place of `model.vision_model` where auto (or the setting)
    says so, building it first when `pictures` (what the run in hand will pass through it) is at
    least IMGSEARCH_BLIP_EXPORT_MIN_PICTURES. Returns the runtime chosen (torch or onnx-int8) and
    records it, with why, for `imgsearch status`."""
    setting = getattr(settings, "image_runtime", "auto")
    if isinstance(model.vision_model, OnnxVisionModel):
        if role == "captioner" and pictures > 0 and not is_quantized(model.text_decoder):  # a larger run may repay it now
            decoder = _decoder(model, read_meta(settings.index_dir, role), runtime, pictures, setting)
            folder = export_folder(settings.index_dir, role)
            write_choice(folder, {**(read_choice(folder) or {}), "decoder": decoder})
        return VARIANT
    meta, why = None, None
    if setting == "onnx":
        why = "IMGSEARCH_IMAGE_RUNTIME=onnx: BLIP's vision tower has no fp32 ONNX variant (not faster than torch fp32)"
    elif setting == "torch" or (setting == "auto" and runtime.device.type != "cpu"):
        pass
    else:
        folder = export_folder(settings.index_dir, role)
        with build_lock(folder):
            meta = read_meta(settings.index_dir, role)
            least = getattr(settings, "blip_export_min_pictures", 0)
            large = pictures >= least or setting == VARIANT
            if meta is not None and role == "captioner" and "decoder" not in meta and large:
                meta = None  # made before the decoder was measured: rebuilt, once
            if meta is None or meta.get("model") != model_id:
                meta = None
                if large:
                    meta = _ensure(model, processor, runtime, model_id, folder, role)
                else:
                    why = (f"auto: {pictures} pictures for BLIP's vision tower, fewer than "
                           f"IMGSEARCH_BLIP_EXPORT_MIN_PICTURES ({least}): no ONNX export built yet")
    name, said = ("torch", why) if why else choose(meta, setting, runtime)
    if name == VARIANT:
        model.vision_model = OnnxVisionModel(export_folder(settings.index_dir, role) / FILE, runtime.dtype)
    decoder = _decoder(model, meta, runtime, pictures, setting) if role == "captioner" and name == VARIANT else None
    write_choice(export_folder(settings.index_dir, role), {"chosen": name, "why": said, "model": model_id,
                                                           "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                                           **({"decoder": decoder} if decoder else {})})
    log.info("BLIP %s vision tower: %s (%s)", role, name, said)
    return name


def _decoder(model: Any, meta: dict[str, Any] | None, runtime: Any, pictures: int, setting: str) -> str:
    """Beside an int8 vision tower, the captioner's decoder in int8 where admitted and worth it
    (`blip_decoder`); what runs it and why, for `imgsearch status`."""
    said = use_int8_decoder(model, (meta or {}).get("decoder"), runtime, pictures, forced=setting == VARIANT)
    log.info("BLIP captioner's decoder: %s", said)
    return said


def choose(meta: dict[str, Any] | None, setting: str, runtime: Any) -> tuple[str, str]:
    """(torch or onnx-int8, why). auto takes int8 only where it measured at least FASTER times
    torch's rate at build, in the runtime torch really uses: unlike CLIP's tower, whose int8 always
    won where torch runs fp32, a small BLIP (the bundled tiny one) runs faster in torch."""
    record = (meta or {}).get("variants", {}).get(VARIANT)
    if setting == "torch":
        return "torch", "IMGSEARCH_IMAGE_RUNTIME=torch"
    if setting == VARIANT:
        if record is None or not record["admitted"]:
            why = record["why"] if record else (meta or {}).get("error", "not built")
            raise ConfigError(f"IMGSEARCH_IMAGE_RUNTIME={VARIANT}, but BLIP's vision tower has no admitted int8 "
                              f"variant ({why}); use auto or torch")
        return VARIANT, f"IMGSEARCH_IMAGE_RUNTIME={VARIANT}; admitted: {record['why']}"
    if runtime.device.type != "cpu":
        return "torch", f"auto: a GPU ({runtime.describe()}) runs torch"
    if record is None:
        return "torch", f"auto: no ONNX export of BLIP's vision tower ({(meta or {}).get('error', 'not built')})"
    if not record["admitted"]:
        return "torch", f"auto: the int8 variant was refused ({record['why']})"
    fast, slow = record.get("img_s"), meta.get("torch_img_s")
    if fast and slow and fast >= FASTER * slow:
        return VARIANT, (f"auto: int8 measured {fast:.1f} img/s against torch {runtime.describe()} {slow:.1f} "
                         f"at build; admitted ({record['why']})")
    return "torch", f"auto: torch {runtime.describe()} measured {slow} img/s at build, int8 {fast}: not {FASTER}x faster"


def _ensure(model: Any, processor: Any, runtime: Any, model_id: str, folder: Path, role: str) -> dict[str, Any]:
    """The export's meta, built now; a failed build is recorded (never retried for this model)
    and costs only speed."""
    try:
        use = "captions" if role == "captioner" else "reranking"
        with waiting(f"building a faster vision tower for {use} on this CPU, once for this model"):
            return _build(model, processor, runtime, model_id, folder, role)
    except Exception as exc:  # an exporter limit or a missing package must not stop captioning
        log.warning("BLIP vision tower not exported to ONNX (%s); torch runs it.", exc)
        meta = {"format": FORMAT, "model": model_id, "error": f"{type(exc).__name__}: {exc}", "variants": {}}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / META).write_text(json.dumps(meta))
        return meta


def _build(model: Any, processor: Any, runtime: Any, model_id: str, folder: Path, role: str) -> dict[str, Any]:
    with staged(folder) as tmp:
        started = time.perf_counter()
        size = int(processor.image_processor.size["height"])
        pixels = processor(images=calibration_images(size, CALIBRATION), return_tensors="pt").pixel_values.float()
        tower = _FloatVision(model.vision_model)
        reference, torch_fp32_s = timed(tower.states, pixels.numpy(), BATCH)
        swap_blip_vision_attention(tower.vision)  # after the reference: checked against transformers' own
        _export(tower, pixels[:2], tmp / "fp32.onnx")
        quantize(tmp / "fp32.onnx", tmp / FILE)
        (tmp / "fp32.onnx").unlink()
        # checked and timed in the calls it will run in: dynamic quantization takes each
        # activation's range over a whole call, so a call's size changes its states a little
        states, img_s = timed(OnnxImageTower(tmp / FILE), pixels.numpy(), RUN_BATCH)
        meta: dict[str, Any] = {
            "format": FORMAT, "model": model_id, "image_size": size, "calibration": len(pixels),
            "thresholds": {k: THRESHOLDS[k] for k in ("cos_min", "cos_mean")},
            "torch_runtime": runtime.describe(), "torch_img_s": torch_fp32_s,
            "variants": {VARIANT: {**admit_states(reference, states), "img_s": img_s, "file": FILE}}}
        if runtime.dtype != torch.float32:  # what the variant must beat is the runtime torch really uses
            vision = model.vision_model
            with torch.inference_mode():
                _, meta["torch_img_s"] = timed(lambda x: vision(pixel_values=torch.from_numpy(x).to(
                    runtime.device, runtime.dtype)).last_hidden_state.float().numpy(), pixels.numpy(), BATCH)
        if role == "captioner":
            try:
                meta["decoder"] = measure_decoder(model, torch.from_numpy(reference), CAPTION_TOKENS, BATCH_DECODE)
            except Exception as exc:  # torch without its eager quantization: the decoder stays as it is
                meta["decoder"] = {"admitted": False, "why": f"not measured ({type(exc).__name__}: {exc})"}
        meta["build_s"] = round(time.perf_counter() - started, 1)
        (tmp / META).write_text(json.dumps(meta, indent=1))
    return meta


class _FloatVision(torch.nn.Module):
    """The vision tower in fp32, pixels -> states: a copy, since the model in use may be bf16 and
    shared with other threads."""

    def __init__(self, vision: torch.nn.Module) -> None:
        super().__init__()
        self.vision = copy.deepcopy(vision).float().eval()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values=pixels).last_hidden_state

    def states(self, pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self(torch.from_numpy(pixels)).numpy()


def _export(tower: _FloatVision, sample: torch.Tensor, path: Path) -> None:
    """Traced with gradients on, as `image_export._export` (a tower that still has torch's fused
    attention exports its math); the swapped attention is ONNX Runtime's (com.microsoft opset)."""
    tower.requires_grad_(True)
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(tower, (sample,), str(path), input_names=["pixels"], output_names=["states"],
                          opset_version=17, dynamo=False, custom_opsets={"com.microsoft": 1},
                          dynamic_axes={"pixels": {0: "n"}, "states": {0: "n"}})


def admit_states(reference: np.ndarray, states: np.ndarray, thresholds: dict[str, float] | None = None) -> dict[str, Any]:
    """Whether `states` (N, tokens, width) reproduce the fp32 `reference` closely enough: per
    picture, the mean over tokens of each token's cosine to its fp32 twin."""
    limits = {**THRESHOLDS, **(thresholds or {})}

    def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sum(a * b, axis=-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)

    per_token = cosines(reference, states)
    per_picture = per_token.mean(axis=1)
    figures = {"cos_min": float(per_picture.min()), "cos_mean": float(per_picture.mean()),
               "cls_min": float(per_token[:, 0].min())}
    failed = [f"{k} {figures[k]:.4f} < {limits[k]}" for k in ("cos_min", "cos_mean") if figures[k] < limits[k]]
    said = (f"states' cosine to torch fp32 per picture min {figures['cos_min']:.4f}, mean {figures['cos_mean']:.4f}; "
            f"CLS token min {figures['cls_min']:.4f}")
    return {**figures, "admitted": not failed,
            "why": f"{said} (n={len(per_picture)})" if not failed else f"{', '.join(failed)} ({said}, n={len(per_picture)})"}


class VisionChoice:
    """What runs one BLIP model's vision tower, chosen once per process (thread-safe) and chosen
    again when a run large enough to build the ONNX export comes after one that went without."""

    def __init__(self, choose: Callable[[int], str]) -> None:
        self._choose = choose
        self.runtime: str | None = None
        self._lock = threading.Lock()

    def expect(self, pictures: int) -> str:
        """Before a run of `pictures` pictures (0: use what exists, build nothing)."""
        with self._lock:
            if self.runtime is None or pictures > 0:  # torch: build now? int8: its decoder too?
                self.runtime = self._choose(pictures)
            return self.runtime

    def ensure(self) -> None:
        if self.runtime is None:
            self.expect(0)
