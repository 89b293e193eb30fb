"""The CLIP text tower exported to ONNX next to the index, so that a query without rerank embeds
its words with onnxruntime and the `tokenizers` library and never imports torch or open_clip:
those imports alone cost a cold `imgsearch query` about 10 s here, this path about a second.

Written (with torch) by a run that has CLIP loaded anyway: an index run, or a query that had to
load it. Nothing is written unless the export reproduces open_clip on probe sentences: the same
token ids and the same vectors within rounding. Read (without torch) by `searcher.light`, which
checks the model id recorded beside it, so vectors of another model are never compared."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

FOLDER = "text-encoder"
META = "meta.json"
FORMAT = 1
# Probes of the self-check: ordinary words, case and punctuation, accents, an empty query and
# one longer than any context (truncation keeps the end-of-text token last).
PROBES = ["a red bicycle", "A Photo of TWO cats, on a sofa!", "café  crème\tat   night", "",
          "a red circle left of a blue star", " ".join(["purple"] * 100)]
MAX_DIFF = 1e-3  # ONNX (fp32) vs the model's own output, on unit vectors


def export_folder(index_dir: Path) -> Path:
    return Path(index_dir) / FOLDER


def read_meta(index_dir: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((export_folder(index_dir) / META).read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("format") == FORMAT else None


def ensure_text_export(clip: Any, index_dir: Path) -> bool:
    """Export `clip` (a ClipEncoder) unless an export of the same model is there. Returns whether
    one is usable now. Failure only costs speed: it is logged and the query loads CLIP."""
    meta = read_meta(index_dir)
    if meta is not None and meta.get("clip_model") == clip.model_id:
        return True
    try:
        _export(clip, export_folder(index_dir))
        return True
    except Exception as exc:  # an exporter limit or a missing package must not stop indexing
        log.warning("CLIP text encoder not exported for fast queries (%s); queries load CLIP instead.", exc)
        return False


def _export(clip: Any, folder: Path) -> None:
    import torch

    tokenizer, clean = _portable_tokenizer(clip.tokenizer)
    context = int(clip.tokenizer.context_length)
    reference = clip.tokenizer(PROBES)
    meta = {"format": FORMAT, "clip_model": clip.model_id, "dim": clip.dim, "context_length": context,
            "pad_id": int(reference[PROBES.index("")][-1]), "eot_id": int(reference[-1][-1]), "clean": clean}
    folder.parent.mkdir(parents=True, exist_ok=True)
    for stale in folder.parent.glob(f".{FOLDER}-*"):  # left by a process killed while exporting
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER}-", dir=folder.parent))
    try:
        tokenizer.save(str(tmp / "tokenizer.json"))
        text_model = _text_tower(clip.model)
        with torch.inference_mode():
            expected = text_model(reference).numpy()
        with warnings.catch_warnings():  # the exporter's notes are for its developers, not our users
            warnings.simplefilter("ignore")
            torch.onnx.export(text_model, (reference,), str(tmp / "text.onnx"), input_names=["ids"],
                              output_names=["vectors"], dynamic_axes={"ids": {0: "n"}, "vectors": {0: "n"}},
                              opset_version=17, dynamo=False)
        (tmp / META).write_text(json.dumps(meta))
        _check(tmp, meta, reference.numpy(), expected)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _text_tower(model: Any) -> Any:
    """open_clip's encode_text on an fp32 copy without the vision tower: the model in use may be
    bf16 and shared with other threads, so it is neither converted nor touched."""
    import torch

    class TextTower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = copy.deepcopy(model)
            self.model.visual = None
            self.model.float().eval()

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return self.model.encode_text(ids, normalize=True)

    return TextTower()


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
    diff = float(np.abs(encoder.run(ids) - expected).max())
    if diff > MAX_DIFF:
        raise ValueError(f"the ONNX text encoder differs from the model by {diff:.2g}")
