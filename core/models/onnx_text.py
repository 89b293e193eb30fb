"""CLIP's text tower as exported by `text_export`, run with onnxruntime and `tokenizers` only: no
torch, no open_clip, so a cold process embeds a query in well under a second."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import numpy as np


class OnnxTextEncoder:
    def __init__(self, folder: Path, meta: dict[str, Any]) -> None:
        """`meta`: the export's meta.json as `text_export.read_meta` gives it (the caller has
        already read it to check the model)."""
        import onnxruntime
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.meta = meta
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # no warnings on stderr for the CLI
        self.session = onnxruntime.InferenceSession(str(folder / "text.onnx"), options,
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
        return self.session.run(None, {"ids": ids})[0].astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one per text."""
        return self.run(np.stack([self.token_ids(t) for t in texts]))
