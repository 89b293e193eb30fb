"""The CLIP text tower exported to ONNX next to the index, so that a query without rerank embeds
its words with onnxruntime and the `tokenizers` library and never imports torch or open_clip:
those imports alone cost a cold `imgsearch query` about 10 s here, this path about a second.

Written (with torch) by a run that has CLIP loaded anyway: an index run, or a query that had to
load it. Nothing is written unless the export reproduces open_clip on probe sentences: the same
token ids and the same vectors within rounding. Read (without torch, with `onnx_text`) by
`library.local`, which checks the model id recorded beside it, so vectors of another model are
never compared."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from imgsearch.progress import waiting

log = logging.getLogger(__name__)

FOLDER = "text-encoder"
META = "meta.json"
# 2: the weights in a file of their own beside the graph (ONNX external data: onnxruntime maps
# it instead of parsing and copying 250 MB, half of a cold session's start), and the graph takes
# ids of any length, so a query runs only up to its end-of-text token ("pool" in the meta).
# 3: the graph as ONNX Runtime optimises it (`_optimize`), saved, so a session loads it as it is.
# 1 (read, no longer written): one file, the whole context every time.
FORMAT = 3
READABLE = (1, 2, 3)
WEIGHTS = "text.data"
# Probes of the self-check: ordinary words, case and punctuation, accents, an empty query and
# one longer than any context (truncation keeps the end-of-text token last).
PROBES = ["a red bicycle", "A Photo of TWO cats, on a sofa!", "café  crème\tat   night", "",
          "a red circle left of a blue star", " ".join(["purple"] * 100)]
MAX_DIFF = 1e-3  # ONNX (fp32) vs the model's own output, on unit vectors
# The int8 variant (`ensure_text_int8`), beside the fp32 graph, its weights in a file of its own.
INT8, INT8_WEIGHTS = "text-int8.onnx", "text-int8.data"
INT8_PROMPTS = 128  # admission prompts taken from the tag vocabulary (`admission_prompts`)


def export_folder(index_dir: Path) -> Path:
    return Path(index_dir) / FOLDER


def read_meta(index_dir: Path) -> dict[str, Any] | None:
    return read_meta_file(export_folder(index_dir) / META, READABLE)


def read_meta_file(path: Path, formats: tuple[int, ...]) -> dict[str, Any] | None:
    """An export's meta.json (this text tower's, or the image tower's), when it can be read and is
    of a format this code knows; else None, and the export is made again."""
    try:
        meta = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") in formats else None


def is_current(index_dir: Path, clip_id: str) -> bool:
    """Whether the export beside the index is of this model, in this format, for this ONNX
    Runtime: what an index run asks before loading CLIP to export it."""
    meta = read_meta(index_dir)
    return (meta is not None and meta.get("clip_model") == clip_id and meta.get("format") == FORMAT
            and meta.get("ort") == _ort_version())


def ensure_text_export(clip: Any, index_dir: Path) -> bool:
    """Export `clip` (a ClipEncoder) unless the export there `is_current` (an older format is
    read, but replaced by whoever has CLIP loaded). Returns whether one is usable now. Failure
    only costs speed: it is logged and the query loads CLIP."""
    if is_current(index_dir, clip.model_id):
        return True
    from imgsearch.models.image_export import build_lock

    try:
        with build_lock(export_folder(index_dir)):  # not beside another process adding its int8 variant
            if not is_current(index_dir, clip.model_id):  # another process may have just written it
                with waiting("preparing the query encoder for fast searches, once for this model"):
                    _export(clip, export_folder(index_dir))
        return True
    except Exception as exc:  # an exporter limit or a missing package must not stop indexing
        log.warning("CLIP text encoder not exported for fast queries (%s); queries load CLIP instead.", exc)
        return False


def _export(clip: Any, folder: Path) -> None:
    import torch

    from imgsearch.models.clip import end_pool

    tokenizer, clean = _portable_tokenizer(clip.tokenizer)
    context = int(clip.tokenizer.context_length)
    reference = clip.tokenizer(PROBES)
    pool = end_pool(clip.model) if _attention_traceable(clip.model) else None
    meta = {"format": FORMAT, "ort": _ort_version(), "optimized": OPTIMIZED, "clip_model": clip.model_id,
            "dim": clip.dim, "context_length": context,
            "pad_id": int(reference[PROBES.index("")][-1]), "eot_id": int(reference[-1][-1]), "clean": clean,
            "pool": pool, "eos_id": getattr(clip.model, "text_eos_id", None)}
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{FOLDER}-*"):  # left by a process killed while exporting
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-", dir=folder.parent))
    try:
        tokenizer.save(str(tmp / "tokenizer.json"))
        tower = _fp32_text_tower(clip.model)
        with torch.inference_mode():  # open_clip's own encode_text (torch's attention), whole context
            expected = tower(reference).numpy()
        if pool is not None:
            tower.cut()
        # Traced on one probe: its axes are dynamic, and `_check` runs them all. Written straight
        # to a file of its own folder (where the exporter puts the weights of a tower over 2 GB),
        # which only `_optimize` reads: a round trip through onnx to split off the weights of a
        # base-size tower (~250 MB) cost ~0.8 s.
        traced = tmp / "traced"
        traced.mkdir()
        with warnings.catch_warnings():  # the exporter's notes are for its developers, not our users
            warnings.simplefilter("ignore")
            torch.onnx.export(tower, (reference[:1],), str(traced / "text.onnx"), input_names=["ids"],
                              output_names=["vectors"], opset_version=17, dynamo=False, dynamic_axes={
                                  "ids": {0: "n", 1: "length"} if pool else {0: "n"}, "vectors": {0: "n"}})
        del tower
        _optimize(traced / "text.onnx", tmp / "text.onnx")  # what is checked below and kept
        shutil.rmtree(traced)
        (tmp / META).write_text(json.dumps(meta))
        _check(tmp, meta, reference.numpy(), expected)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


OPTIMIZED = "extended"  # the level of ONNX Runtime's graph optimisations the saved graph has had


def _optimize(source: Path, target: Path, weights: str = WEIGHTS) -> None:
    """`source` with ONNX Runtime's graph optimisations applied (the "extended" level: constant
    folding, eliminations, fusions; the layout ones of "all" are tied to this CPU's instructions)
    and saved as `target`, its weights in `WEIGHTS` beside it, so that a session loads it as it
    is (`onnx_text`): a cold query's session starts in ~20 ms instead of ~60 (2-core Xeon). Made
    for this ONNX Runtime version (meta "ort"): another version optimises it again, and an index
    run exports anew."""
    import onnxruntime

    from imgsearch.models.onnx_text import session_options

    options = session_options()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    options.add_session_config_entry("session.optimized_model_external_initializers_file_name", weights)
    options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes",
                                     "1024")
    onnxruntime.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


def _ort_version() -> str:
    import onnxruntime

    return str(onnxruntime.__version__)


def _fp32_text_tower(model: Any) -> Any:
    """open_clip's encode_text on an fp32 copy of the text tower alone: the model in use may be
    bf16 and shared with other threads, so it is neither converted nor touched, and its vision
    tower (most of its weights) is not copied. `cut()` then makes the copy take ids cut after
    their end-of-text token, of any length (`clip.encode_text_prefix`)."""
    import torch

    from imgsearch.models.clip import encode_text_prefix

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            visual = getattr(model, "visual", None)
            self.model = copy.deepcopy(model, memo={} if visual is None else {id(visual): None})
            self.model.float().eval()
            self._cut = False

        def cut(self) -> None:
            for block in self.model.transformer.resblocks:
                block.attn = _traceable_attention(block.attn)
            self._cut = True

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            if not self._cut:
                return self.model.encode_text(ids, normalize=True)
            return torch.nn.functional.normalize(encode_text_prefix(self.model, ids), dim=-1)

    return TextTower()


def _attention_traceable(model: Any) -> bool:
    """Whether every text block's attention is the plain batch-first self-attention that
    `_traceable_attention` can stand in for (torch's own bakes the traced length into a Reshape)."""
    import torch

    blocks = getattr(getattr(model, "transformer", None), "resblocks", None)
    return blocks is not None and all(
        isinstance(b.attn, torch.nn.MultiheadAttention) and b.attn.batch_first and b.attn._qkv_same_embed_dim
        and b.attn.bias_k is None and not b.attn.add_zero_attn for b in blocks)


def _traceable_attention(mha: Any) -> Any:
    """`mha` (nn.MultiheadAttention, self-attention, batch first, eval) computed with the same
    weights by plain tensor operations whose shapes the ONNX tracer keeps dynamic. The export's
    self-check compares the result with open_clip's own."""
    import torch
    import torch.nn.functional as F

    class Attention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mha = mha

        def forward(self, query: torch.Tensor, key: Any = None, value: Any = None, need_weights: bool = False,
                    attn_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
            m = self.mha
            n, width = query.shape[0], query.shape[2]

            def heads(t: torch.Tensor) -> torch.Tensor:
                return t.reshape(n, -1, m.num_heads, width // m.num_heads).transpose(1, 2)

            q, k, v = F.linear(query, m.in_proj_weight, m.in_proj_bias).chunk(3, dim=-1)
            out = F.scaled_dot_product_attention(heads(q), heads(k), heads(v), attn_mask=attn_mask)
            return m.out_proj(out.transpose(1, 2).reshape(n, -1, width)), None

    return Attention()


def _portable_tokenizer(tokenizer: Any) -> tuple[Any, list[str]]:
    """A `tokenizers.Tokenizer` that gives open_clip's ids, and the text cleaning to apply first."""
    backend = getattr(getattr(tokenizer, "tokenizer", None), "backend_tokenizer", None)
    if backend is not None:  # open_clip's HFTokenizer: already a `tokenizers` one
        return backend, ["whitespace"]
    if hasattr(tokenizer, "bpe_ranks") and hasattr(tokenizer, "encoder"):  # open_clip's own CLIP BPE
        from transformers import CLIPTokenizer

        merges = [tuple(pair) for pair, _ in sorted(tokenizer.bpe_ranks.items(), key=lambda kv: kv[1])]
        sot, eot = tokenizer.decoder[tokenizer.sot_token_id], tokenizer.decoder[tokenizer.eot_token_id]
        fast = CLIPTokenizer(vocab=dict(tokenizer.encoder), merges=merges, unk_token=eot, bos_token=sot,
                             eos_token=eot, pad_token=eot)
        return fast.backend_tokenizer, ["html", "whitespace", "lower"]
    raise TypeError(f"no portable form of the tokenizer {type(tokenizer).__name__}")


def _check(folder: Path, meta: dict[str, Any], reference_ids: np.ndarray, expected: np.ndarray) -> None:
    from imgsearch.models.onnx_text import OnnxTextEncoder

    encoder = OnnxTextEncoder(folder, meta)
    ids = np.stack([encoder.token_ids(p) for p in PROBES])
    if not np.array_equal(ids, reference_ids):
        bad = PROBES[int(np.flatnonzero((ids != reference_ids).any(1))[0])]
        raise ValueError(f"the portable tokenizer disagrees with open_clip on {bad!r}")
    together = encoder.run(ids)  # cut at the longest probe's end
    alone = np.concatenate([encoder.run(ids[i:i + 1]) for i in range(len(PROBES))])  # each at its own
    diff = float(max(np.abs(together - expected).max(), np.abs(alone - expected).max()))
    if diff > MAX_DIFF:
        raise ValueError(f"the ONNX text encoder differs from the model by {diff:.2g}")


# --- the int8 variant ------------------------------------------------------------------------------
# A query's few tokens read every weight of the text tower once: ~150 MB in fp32, so the warm
# query is bound by memory traffic (docs/bench-report.md). Weights in int8 (dynamic quantization,
# per channel, as the image tower's) read a quarter of that: 17.6-19.3 -> 8.1-9.5 ms a query for
# ViT-B-32's tower on the AVX2 EPYC. Built from the saved fp32 graph with ONNX Runtime alone
# (about 8 s with its check on the AVX2 EPYC), admitted like the image tower's variant (`image_export.admit`: every prompt's
# cosine to its fp32 vector, and each prompt's 10 nearest others) and only if it also measured
# faster, and used where the image-runtime setting allows int8 (`wants_int8`).


def int8_due(setting: str, pictures: int, threshold: int) -> bool:
    """Whether an index run should build the int8 variant: always when int8 is asked for, and for
    auto once the index holds as many pictures as make the image tower's export worth building
    (the same collections whose users search most; a first index of a small one stays as fast)."""
    return setting == "onnx-int8" or (setting == "auto" and pictures >= threshold)


def wants_int8(meta: dict[str, Any] | None, setting: str) -> bool:
    """Whether a session of this export should run its int8 variant: built for this export and
    admitted, and the setting (`Settings.image_runtime`, which names the runtime of every
    tower) allows int8."""
    record = (meta or {}).get("int8") or {}
    return (setting in ("auto", "onnx-int8") and bool(record.get("admitted"))
            and record.get("ort") == (meta or {}).get("ort"))


def admission_prompts(vocabulary: Any, n: int = INT8_PROMPTS) -> list[str]:
    """Query-like prompts for the int8 variant's admission: a tag vocabulary's classes in their
    section's first template, `n` of them spread over the vocabulary (none without one), and
    the probes."""
    prompts = [section.templates[0].format(cls.phrases[0]) for section in vocabulary.sections
               for cls in section.classes] if vocabulary is not None else []
    if len(prompts) > n:
        prompts = [prompts[round(i * (len(prompts) - 1) / (n - 1))] for i in range(n)]
    return prompts + [p for p in PROBES if p.strip()]


def ensure_text_int8(index_dir: Path, clip_id: str, prompts: list[str]) -> dict[str, Any] | None:
    """Build, check and record the int8 variant of the current export of `clip_id` unless its
    record is there already (admitted or not); returns the record, or None without a current
    export. Failure only costs speed: it is recorded as refused."""
    from imgsearch.models.image_export import build_lock

    folder = export_folder(index_dir)
    meta = read_meta(index_dir)
    if meta is None or meta.get("clip_model") != clip_id or meta.get("format") != FORMAT:
        return None
    if "int8" in meta:
        return meta["int8"]
    with build_lock(folder):
        meta = read_meta(index_dir)
        if meta is None or meta.get("clip_model") != clip_id or meta.get("format") != FORMAT:
            return None
        if "int8" in meta:  # another process built it meanwhile
            return meta["int8"]
        started = time.perf_counter()
        try:
            with waiting("building a faster query encoder for this CPU, once for this model"):
                record = _build_int8(folder, meta, prompts)
        except Exception as exc:  # an ONNX Runtime limit: the fp32 graph serves as before
            log.warning("CLIP text encoder: no int8 variant (%s)", exc)
            record = {"admitted": False, "why": f"not built: {type(exc).__name__}: {exc}"}
        if not record["admitted"]:
            for name in (INT8, INT8_WEIGHTS):
                (folder / name).unlink(missing_ok=True)
        record.update(ort=meta.get("ort"), build_s=round(time.perf_counter() - started, 2))
        _write_meta(folder, {**meta, "int8": record})
        return record


def _build_int8(folder: Path, meta: dict[str, Any], prompts: list[str]) -> dict[str, Any]:
    from imgsearch.models.image_export import admit, quantize
    from imgsearch.models.onnx_text import OnnxTextEncoder

    tmp = Path(tempfile.mkdtemp(prefix=".int8-", dir=folder))
    try:
        quantize(folder / "text.onnx", tmp / INT8)  # a graph ONNX Runtime optimised: `quantize` types it
        _optimize(tmp / INT8, folder / INT8, INT8_WEIGHTS)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    fp32 = OnnxTextEncoder(folder, meta, warm=True)
    int8 = OnnxTextEncoder(folder, meta, warm=True, int8=True)
    reference = np.concatenate([fp32.encode(prompts[i:i + 64]) for i in range(0, len(prompts), 64)])
    vectors = np.concatenate([int8.encode(prompts[i:i + 64]) for i in range(0, len(prompts), 64)])
    record = admit(reference, vectors, against="the fp32 export")
    fp32_ms, int8_ms = _query_ms(fp32, int8)
    record.update(fp32_ms=fp32_ms, int8_ms=int8_ms, prompts=len(prompts))
    if record["admitted"] and int8_ms >= fp32_ms:
        record.update(admitted=False, why=f"{record['why']}; not faster: {int8_ms} ms a query against {fp32_ms} fp32")
    elif record["admitted"]:
        record["why"] = f"{record['why']}; {int8_ms} ms a query against {fp32_ms} fp32"
    return record


def _query_ms(fp32: Any, int8: Any, rounds: int = 9) -> tuple[float, float]:
    """Median ms of one short query through each session, alternating (a busy machine slows both)."""
    ids = fp32.token_ids("a red car parked on a street")[None]
    times: dict[int, list[float]] = {0: [], 1: []}
    for encoder in (fp32, int8):
        encoder.run(ids)  # warm-up: buffers, pre-packing
    for _ in range(rounds):
        for which, encoder in enumerate((fp32, int8)):
            started = time.perf_counter()
            encoder.run(ids)
            times[which].append(time.perf_counter() - started)
    return round(float(np.median(times[0])) * 1e3, 2), round(float(np.median(times[1])) * 1e3, 2)


def _write_meta(folder: Path, meta: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".meta-", dir=folder)
    with os.fdopen(fd, "w") as fh:
        json.dump(meta, fh)
    os.replace(tmp, folder / META)


def text_tower_status(index_dir: Path, setting: str) -> dict[str, Any] | None:
    """For `imgsearch status`: what embeds a query's words (the export beside the index, fp32 or
    its int8 variant) and why; None without an export."""
    meta = read_meta(index_dir)
    if meta is None:
        return None
    record = meta.get("int8")
    if wants_int8(meta, setting):
        return {"chosen": "onnx-int8", "why": record["why"]}
    if record is None:
        why = "no int8 variant built" + ("" if setting in ("auto", "onnx-int8") else f" (IMGSEARCH_IMAGE_RUNTIME={setting})")
    elif not record.get("admitted"):
        why = f"int8 refused: {record.get('why')}"
    else:
        why = f"int8 not used (IMGSEARCH_IMAGE_RUNTIME={setting})"
    return {"chosen": "onnx", "why": why}
