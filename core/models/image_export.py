"""CLIP's image tower through ONNX Runtime, fp32 and int8, each variant admitted by measurement.

On a CPU without fast bf16 torch runs the tower in fp32, and ONNX Runtime does the same
arithmetic as fast or faster; its int8 variant (dynamic quantization of the MatMul/Gemm weights,
per output channel) is ~1.5x faster again on a ViT-B-32 (docs/bench-report.md). Quantization moves
the vectors, so a variant is only used once it has shown, on this model's own weights, that it
reproduces open_clip in fp32 (`admit`): that check runs once, when the export is built, and its
figures are kept in the export's meta.json, which `imgsearch status` reads. The fp32 graph is run
by the check only where its int8 variant is refused or it is asked for by name: an admitted int8
variant, quantized from it, already shows that it computes open_clip's function.

The export lives in the index folder beside the text export (`onnx_image.FOLDER`) and names the
CLIP model id it was made from (weights digest included, `ModelProfile.clip_id`): another model
or retrained weights build it again. Preprocessing is untouched (the product's PIL resize and
normalisation, `clip.preprocess`): only the tower changes, so `ClipEncoder.encode_pixels` stays the
one way pictures become vectors, whichever runtime it calls.

Which runtime embeds (`choose`): IMGSEARCH_IMAGE_RUNTIME=auto|torch|onnx|onnx-int8. auto, on a CPU
running fp32: the first admitted of onnx-int8, onnx, torch (measured on an AVX2 EPYC for the
tiny and base profiles: int8 > ORT fp32 >= torch fp32; a fixed order keeps runs repeatable on a
busy machine, where a timing at build would pick by noise). Where torch runs bf16 (fast bf16
units) or on a GPU: torch, unless an admitted variant measured faster at build (bf16 CPUs only).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import os
import random
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from imgsearch.errors import ConfigError
from imgsearch.models.export_attention import swap_self_attention
from imgsearch.models.onnx_image import (
    FORMAT,
    META,
    RUNTIMES,
    VARIANTS,
    OnnxImageTower,
    export_folder,
    read_meta,
    write_choice,
)
from imgsearch.progress import waiting

log = logging.getLogger(__name__)

# Admission, against open_clip in fp32 on the calibration pictures (`calibration_images`):
# - every vector's cosine to its fp32 twin >= 0.99 and their mean >= 0.995: a vector's error is
#   then at most sqrt(2 - 2 * 0.99) = 0.14 of its length, ~0.1 on average, spread over all of its
#   dimensions, so a cosine to a query moves by well under the 0.01-0.02 that separates
#   neighbouring hits of a real search; an ORT fp32 export is ~1 - 1e-6, so this only ever
#   judges quantization;
# - each picture's 10 nearest others (by cosine, among the calibration set) agree with fp32's in
#   at least 80 % on average: the measure of what a search sees, on a set that holds many
#   near-identical shapes pictures, where neighbours are decided by small cosine gaps.
# Vectors that pass are mixed freely with torch-built ones in one index (`docs/bench-report.md`).
THRESHOLDS = {"cos_min": 0.99, "cos_mean": 0.995, "top10": 0.8}
CALIBRATION = 48  # pictures: 24 shapes scenes, 24 photo-like colour fields
BATCH = 16
# The order auto prefers where torch runs fp32 (see the module's docstring).
PREFERENCE = ("onnx-int8", "onnx")

_BUILDING = threading.Lock()


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """One builder of the export in `folder` at a time, across threads and processes (the
    service's workers, a Ray node's actors, a CLI beside them): an flock on a file beside it."""
    with _BUILDING:
        folder.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder.parent / f".{folder.name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing drops the flock


def attach(clip: Any, settings: Any) -> Any:
    """Give `clip` (a ClipEncoder) its image-runtime picker: the choice (and the export, when
    missing) happens at the first picture it embeds, so a process that loads CLIP for words only
    builds nothing. Returns `clip`."""
    clip.pick_image_tower = lambda encoder: pick(encoder, settings)
    return clip


def pick(clip: Any, settings: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """The ONNX tower to embed with, or None for the model itself; sets `clip.image_runtime` and
    records the choice and its reason for `imgsearch status`."""
    setting = getattr(settings, "image_runtime", "auto")
    if setting not in ("auto", *RUNTIMES):
        raise ConfigError(f"unknown image runtime {setting!r}: use auto, {', '.join(RUNTIMES)}")
    meta, tower, small = None, None, None
    with build_lock(export_folder(settings.index_dir)):  # the session is made before another process could rebuild
        if setting != "torch" and not (setting == "auto" and clip.runtime.device.type != "cpu"):
            meta = read_meta(settings.index_dir)
            if meta is None or meta.get("clip_model") != clip.model_id:
                meta = None
                least = getattr(settings, "image_export_min_pictures", 0)
                if setting == "auto" and clip.expected_pictures < least:
                    small = (f"auto: {clip.expected_pictures} pictures to embed, fewer than "
                             f"IMGSEARCH_IMAGE_EXPORT_MIN_PICTURES ({least}): the ONNX export of the image "
                             "tower would not pay for itself yet; a larger run builds it")
                else:
                    meta = _ensure(clip, settings.index_dir, check_fp32=setting == "onnx")
        name, why = ("torch", small) if small else choose(meta, setting, clip.runtime)
        if name in VARIANTS:
            tower = OnnxImageTower(export_folder(settings.index_dir) / VARIANTS[name])
    clip.image_runtime = name
    write_choice(export_folder(settings.index_dir), {"chosen": name, "why": why, "clip_model": clip.model_id,
                                      "at": datetime.now(UTC).isoformat(timespec="seconds")})
    log.info("CLIP image tower: %s (%s)", name, why)
    return tower


def choose(meta: dict[str, Any] | None, setting: str, runtime: Any) -> tuple[str, str]:
    """(runtime name, why) from the export's admission record, the setting and the torch runtime."""
    variants = (meta or {}).get("variants", {})
    if setting == "torch":
        return "torch", "IMGSEARCH_IMAGE_RUNTIME=torch"
    if setting in VARIANTS:
        record = variants.get(setting)
        if record is None:
            raise ConfigError(f"IMGSEARCH_IMAGE_RUNTIME={setting}, but there is no ONNX export of the image "
                              f"tower: {(meta or {}).get('error', 'not built')}; use auto or torch")
        if not record["admitted"]:
            raise ConfigError(f"IMGSEARCH_IMAGE_RUNTIME={setting}, but that variant was refused when it was "
                              f"checked against torch fp32: {record['why']}; use auto, torch or another variant")
        return setting, f"IMGSEARCH_IMAGE_RUNTIME={setting}; admitted: {record['why']}"
    if runtime.device.type != "cpu":
        return "torch", f"auto: a GPU ({runtime.describe()}) runs torch"
    if meta is None or meta.get("error"):
        return "torch", f"auto: no ONNX export of the image tower ({(meta or {}).get('error', 'not built')})"
    admitted = [n for n in PREFERENCE if variants.get(n, {}).get("admitted")]
    if not admitted:
        refused = "; ".join(f"{n}: {v['why']}" for n, v in variants.items())
        return "torch", f"auto: no ONNX variant admitted ({refused})"
    if runtime.dtype == torch.float32:
        best = admitted[0]
        return best, f"auto: torch runs float32 here, {best} is admitted ({variants[best]['why']})"
    # torch runs bf16/fp16 on this CPU: only a variant measured faster at build replaces it
    speeds = {n: variants[n].get("img_s") for n in admitted}
    torch_speed = meta.get("torch_img_s")
    best = max(admitted, key=lambda n: speeds[n] or 0.0)
    if torch_speed and speeds[best] and speeds[best] > torch_speed:
        return best, (f"auto: {best} measured {speeds[best]:.1f} img/s against torch {runtime.describe()} "
                      f"{torch_speed:.1f} at build; admitted ({variants[best]['why']})")
    return "torch", f"auto: torch {runtime.describe()} measured at least as fast as the admitted ONNX variants"


def ensure_image_export(clip: Any, index_dir: Path) -> dict[str, Any]:
    """The export's meta for `clip`'s model, built (exported, quantized, checked) unless it is
    there. A failed build is recorded too (`error`): it costs speed, never an index run, and is
    not tried again for the same model."""
    with build_lock(export_folder(index_dir)):
        return _ensure(clip, index_dir)


def _ensure(clip: Any, index_dir: Path, check_fp32: bool = False) -> dict[str, Any]:
    """`ensure_image_export` for a caller holding `build_lock`."""
    meta = read_meta(index_dir)
    if meta is not None and meta.get("clip_model") == clip.model_id:
        return meta
    folder = export_folder(index_dir)
    try:
        with waiting("building a faster image encoder for this CPU, once for this model"):
            return _build(clip, folder, check_fp32)
    except Exception as exc:  # an exporter limit or a missing package must not stop indexing
        log.warning("CLIP image tower not exported to ONNX (%s); pictures are embedded by torch.", exc)
        meta = {"format": FORMAT, "clip_model": clip.model_id, "error": f"{type(exc).__name__}: {exc}",
                "variants": {}}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / META).write_text(json.dumps(meta))
        return meta


def _build(clip: Any, folder: Path, check_fp32: bool = False) -> dict[str, Any]:
    """Export, quantize and admit. The fp32 graph is run on the calibration pictures only where
    its int8 variant is refused or `check_fp32` asks (IMGSEARCH_IMAGE_RUNTIME=onnx): auto never
    prefers it to an admitted int8 variant, and skipping it saves a fifth of the build (ViT-B-32-256
    on an AVX512-VNNI EPYC, two alternating pairs: 22.2-23.0 -> 17.4 s)."""
    with staged(folder) as tmp:
        started = time.perf_counter()
        pixels = torch.stack([clip.preprocess(im) for im in calibration_images(clip.image_size)])
        tower = _FloatTower(clip.model.visual)
        reference, torch_img_s = timed(tower.vectors, pixels.numpy())
        swap_self_attention(tower)  # after the reference: the variants are checked against open_clip's own
        _export(tower, pixels[:2], tmp / VARIANTS["onnx"])
        quantize(tmp / VARIANTS["onnx"], tmp / VARIANTS["onnx-int8"])
        meta: dict[str, Any] = {
            "format": FORMAT, "clip_model": clip.model_id, "image_size": clip.image_size,
            "thresholds": THRESHOLDS, "calibration": len(pixels), "torch_runtime": clip.runtime.describe(),
            "variants": {}}
        if clip.runtime.dtype == torch.float32:
            meta["torch_img_s"] = torch_img_s
        else:  # the runtime torch really uses (bf16): what a variant must beat
            with torch.inference_mode():
                _, meta["torch_img_s"] = timed(lambda x: clip.model.encode_image(
                    torch.from_numpy(x).to(clip.runtime.device, clip.runtime.dtype)).float().numpy(), pixels.numpy())
        def check(name: str) -> dict[str, Any]:
            vectors, img_s = timed(OnnxImageTower(tmp / VARIANTS[name]), pixels.numpy())
            return {**admit(reference, vectors), "img_s": img_s, "file": VARIANTS[name]}

        int8 = meta["variants"]["onnx-int8"] = check("onnx-int8")  # first: where admitted, fp32 need not run
        if int8["admitted"] and not check_fp32:
            meta["variants"]["onnx"] = {"admitted": True, "file": VARIANTS["onnx"], "img_s": None, "why": (
                "not run: its int8 variant, quantized from this graph, was admitted against torch fp32 "
                f"(cosine min {int8['cos_min']:.4f}), so this graph reproduces open_clip within that margin")}
        else:
            meta["variants"]["onnx"] = check("onnx")
        meta["build_s"] = round(time.perf_counter() - started, 1)
        (tmp / META).write_text(json.dumps(meta, indent=1))
    return meta


@contextlib.contextmanager
def staged(folder: Path) -> Iterator[Path]:
    """A fresh folder beside `folder` to build an export in, put in its place (atomically) when the
    block ends without an error and removed when it raises; leftovers of a process killed while
    building are removed first."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{folder.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        yield tmp
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class _FloatTower(torch.nn.Module):
    """open_clip's image tower in fp32, normalised: a copy, since the model in use may be bf16 and
    shared with other threads."""

    def __init__(self, visual: torch.nn.Module) -> None:
        super().__init__()
        self.visual = copy.deepcopy(visual).float().eval()

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(self.visual(pixels.float()), dim=-1)

    def vectors(self, pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self(torch.from_numpy(pixels)).numpy()


def _export(tower: _FloatTower, sample: torch.Tensor, path: Path) -> None:
    """Traced with gradients on: without them torch's attention takes its fused inference kernel,
    which has no ONNX form."""
    tower.requires_grad_(True)
    with warnings.catch_warnings(), torch.enable_grad():  # the exporter's notes are for its developers
        warnings.simplefilter("ignore")
        torch.onnx.export(tower, (sample,), str(path), input_names=["pixels"], output_names=["vectors"],
                          opset_version=17, dynamo=False, custom_opsets={"com.microsoft": 1},  # `attend`
                          dynamic_axes={"pixels": {0: "n"}, "vectors": {0: "n"}})


def quantize(source: Path, target: Path) -> None:
    """Dynamic int8: weights of MatMul/Gemm quantized per output channel ahead of time, their
    inputs per batch at run time; no calibration data. Convolutions stay fp32 (in a ViT only the
    patch embedding is one). reduce_range (7-bit weights): on a CPU without VNNI, int8 products
    are summed in pairs into 16 bits (VPMADDUBSW), which saturates with 8-bit weights — measured
    on ViT-B-32-256 (random weights, AVX2 EPYC): without it cosine to fp32 min 0.985 / mean 0.990
    (refused), with it 0.9997 / 0.9997 and faster; uint8 weights 0.9998 but slower. Through
    `weight_quantize`: ONNX Runtime's quantizer, its per-channel loop vectorized (the same graph;
    BLIP's vision tower 14.5 -> 6.3 s here). Every tensor it cannot type (the output of a fused
    node such as `export_attention.attend`'s, or of a graph ONNX Runtime has already optimised)
    is fp32, as all of these graphs compute."""
    import onnx
    from onnxruntime.quantization import QuantType

    from imgsearch.models.weight_quantize import quantize_dynamic

    root = logging.getLogger()
    quiet = _DropFrom("onnxruntime")  # it logs advice to the root logger, for its developers
    root.addFilter(quiet)
    try:
        quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul", "Gemm"], per_channel=True,
                         reduce_range=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.removeFilter(quiet)


class _DropFrom(logging.Filter):
    def __init__(self, package: str) -> None:
        super().__init__()
        self.package = package

    def filter(self, record: logging.LogRecord) -> bool:
        return f"{os.sep}{self.package}{os.sep}" not in record.pathname


def timed(run: Callable[[np.ndarray], np.ndarray], pixels: np.ndarray,
          batch: int = BATCH) -> tuple[np.ndarray, float | None]:
    """What `run` makes of `pixels` in batches, and the pictures per second after the first batch
    (the warm-up: oneDNN's kernels, onnxruntime's buffers)."""
    out, took = [], 0.0
    for start in range(0, len(pixels), batch):
        t0 = time.perf_counter()
        out.append(np.asarray(run(pixels[start:start + batch]), dtype=np.float32))
        if start:
            took += time.perf_counter() - t0
    rest = len(pixels) - batch
    return np.concatenate(out), (round(rest / took, 2) if rest > 0 and took > 0 else None)


def admit(reference: np.ndarray, vectors: np.ndarray, thresholds: dict[str, float] | None = None,
          against: str = "torch fp32") -> dict[str, Any]:
    """Whether `vectors` reproduce the fp32 `reference` (both unit rows, same inputs) well
    enough to be used in their place (`THRESHOLDS`), with the figures and a one-line reason."""
    limits = {**THRESHOLDS, **(thresholds or {})}
    cos = np.sum(reference * vectors, axis=1)
    figures = {"cos_min": float(cos.min()), "cos_mean": float(cos.mean()), "top10": top_k_agreement(reference, vectors)}
    failed = [f"{k} {figures[k]:.4f} < {limits[k]}" for k in ("cos_min", "cos_mean", "top10") if figures[k] < limits[k]]
    said = f"cosine to {against} min {figures['cos_min']:.4f}, mean {figures['cos_mean']:.4f}; " \
           f"top-10 agreement {figures['top10']:.3f}"
    return {**figures, "admitted": not failed,
            "why": f"{said} (n={len(cos)})" if not failed else f"{', '.join(failed)} ({said}, n={len(cos)})"}


def top_k_agreement(reference: np.ndarray, vectors: np.ndarray, k: int = 10) -> float:
    """Mean share of each row's k nearest other rows (by cosine) that both sets of vectors agree on."""
    n = len(reference)
    k = min(k, n - 1)
    if k <= 0:
        return 1.0

    def nearest(v: np.ndarray) -> np.ndarray:
        sims = v @ v.T
        np.fill_diagonal(sims, -np.inf)
        return np.argsort(-sims, axis=1, kind="stable")[:, :k]

    a, b = nearest(reference), nearest(vectors)
    return float(np.mean([len(set(a[i]) & set(b[i])) / k for i in range(n)]))


def calibration_images(size: int, n: int = CALIBRATION, seed: int = 0) -> list[Any]:
    """Deterministic pictures for the admission check: shapes-world scenes (what the tiny models
    know; flat colours, hard edges) and photo-like ones (smooth colour fields, soft blobs, sensor
    noise, through JPEG) at about the model's resolution."""
    import io

    from imgsearch.shapes.render import render, sample_scene
    from PIL import Image, ImageFilter

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    pictures = [render(sample_scene(rng), rng).convert("RGB") for _ in range(n // 2)]
    side = max(64, size * 2)
    for _ in range(n - len(pictures)):
        field = nrng.uniform(0, 255, (4, 4, 3)).astype(np.uint8)
        im = Image.fromarray(field).resize((side * 4 // 3, side), Image.Resampling.BICUBIC)
        blobs = Image.fromarray(nrng.uniform(0, 255, (6, 8, 3)).astype(np.uint8)).resize(im.size, Image.Resampling.NEAREST)
        im = Image.blend(im, blobs.filter(ImageFilter.GaussianBlur(side / 40)), 0.4)
        noisy = np.clip(np.asarray(im, dtype=np.float32) + nrng.normal(0, 6, (im.height, im.width, 3)), 0, 255)
        buf = io.BytesIO()
        Image.fromarray(noisy.astype(np.uint8)).save(buf, "JPEG", quality=90)
        pictures.append(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return pictures
