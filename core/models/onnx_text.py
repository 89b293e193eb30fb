"""CLIP's text tower as exported by `text_export`, run with onnxruntime and `tokenizers` only: no
torch, no open_clip, so a cold process embeds a query in well under a second."""

from __future__ import annotations

import html
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class OnnxTextEncoder:
    def __init__(self, folder: Path, meta: dict[str, Any], warm: bool = False, int8: bool = False) -> None:
        """`meta`: the export's meta.json as `text_export.read_meta` gives it (the caller has
        already read it to check the model). `warm`: for a process that embeds many queries
        (`session_options`). `int8`: run the export's int8 variant (`text_export.wants_int8`)."""
        import onnxruntime
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.meta = meta
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        options = session_options(warm)
        if meta.get("optimized") and meta.get("ort") == onnxruntime.__version__:  # optimised by the export
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.int8 = int8
        graph = folder / ("text-int8.onnx" if int8 else "text.onnx")  # text_export.INT8: not imported, for speed
        self.session = onnxruntime.InferenceSession(str(graph), options,
                                                    providers=["CPUExecutionProvider"])

    def token_ids(self, text: str) -> np.ndarray:
        """open_clip's ids: cleaned, with start/end tokens, cut to the context with the end token
        kept last, padded."""
        for step in self.meta["clean"]:
            if step == "html":
                text = html.unescape(html.unescape(text))
            elif step == "whitespace":
                text = re.sub(r"\s+", " ", text).strip()
            elif step == "lower":
                text = text.lower()
        context = self.meta["context_length"]
        ids = self.tokenizer.encode(text).ids[:context]
        if len(ids) == context:
            ids[-1] = self.meta["eot_id"]
        return np.array(ids + [self.meta["pad_id"]] * (context - len(ids)), dtype=np.int64)

    def run(self, ids: np.ndarray) -> np.ndarray:
        """Vectors of padded ids, computed up to the batch's last end-of-text token when the
        export allows it (its tower is causal and pools there: the padding cannot matter)."""
        pool = self.meta.get("pool")
        if pool in ("argmax", "eos") and ids.size:
            ends = ids.argmax(axis=1) if pool == "argmax" else (ids == self.meta["eos_id"]).argmax(axis=1)
            ids = ids[:, :int(ends.max()) + 1]
        return self.session.run(None, {"ids": ids})[0].astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one per text."""
        return self.run(np.stack([self.token_ids(t) for t in texts]))


class WordTower:
    """The export beside an index in a warm session, for `ClipEncoder.word_tower`: opened at the
    first query that finds it (an index run writes it after CLIP is loaded), and only for the
    model it was made from; opened again when its meta changes (a new export, or its int8
    variant added by a later run)."""

    def __init__(self, index_dir: Path, model_id: str, setting: str = "auto") -> None:
        """`setting`: `Settings.image_runtime`, which says whether the int8 variant may run."""
        self.index_dir, self.model_id, self.setting = Path(index_dir), model_id, setting
        self._encoder: OnnxTextEncoder | None = None
        self._seen: float | None = None  # the meta file's mtime when it was last looked at
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        from imgsearch.models.text_export import META, export_folder, read_meta, wants_int8

        folder = export_folder(self.index_dir)
        try:
            stamp = (folder / META).stat().st_mtime
        except OSError:
            stamp = None
        if stamp is not None and stamp != self._seen:
            with self._lock:
                if stamp != self._seen:
                    self._seen = stamp
                    meta = read_meta(self.index_dir)
                    if meta is not None and meta.get("clip_model") == self.model_id:
                        try:
                            self._encoder = OnnxTextEncoder(folder, meta, warm=True,
                                                            int8=wants_int8(meta, self.setting))
                        except Exception as exc:  # only speed is lost: torch (or the session open) embeds
                            log.warning("The exported text encoder failed (%s); CLIP embeds the words.", exc)
        encoder = self._encoder
        return encoder.encode if encoder is not None else None


def session_options(warm: bool = False) -> Any:
    """One thread per physical core (a core's second hardware thread adds nothing to these
    kernels) and threads that sleep rather than spin between operators (spinning only burns a
    busy machine's CPU on a few tokens). A cold process (starts, embeds one query, ends) does not
    pre-pack the weights: that costs its start ~0.3 s of CPU and saves a few ms on a query; a
    warm one does (ViT-B-32, AMX Xeon: a query 37 -> 15 ms). Measured: docs/bench-report.md."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no warnings on stderr for the CLI
    options.intra_op_num_threads = physical_cores()
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.disable_prepacking", "0" if warm else "1")
    return options


def physical_cores() -> int:
    """Cores this process may run on, counting a core's hardware threads once (Linux's sysfs
    topology; elsewhere the usable CPUs)."""
    usable = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in usable:
        try:
            base = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
            cores.add(((base / "physical_package_id").read_text().strip(), (base / "core_id").read_text().strip()))
        except OSError:
            cores.add(("", str(cpu)))
    return max(1, len(cores))
