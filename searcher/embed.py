"""Words and pictures into CLIP's space, by whichever encoder this process has: the torch models,
or the text tower exported to ONNX beside the index (no torch import: a cold words-only query
without rerank answers in about a second)."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from imgsearch.errors import BadImageError, ConfigError


class Embedder(Protocol):
    def texts(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one per text."""
        ...

    def image(self, data: bytes, name: str) -> np.ndarray:
        """The picture's L2-normalised vector; ConfigError (saying which) when it is no picture."""
        ...


class TorchEmbedder:
    def __init__(self, models: Any) -> None:
        self.models = models

    def texts(self, texts: list[str]) -> np.ndarray:
        return self.models.clip.encode_texts(texts)

    def image(self, data: bytes, name: str) -> np.ndarray:
        import torch

        from imgsearch.imaging import decode  # Pillow and its plugins: not on the words-only path

        clip = self.models.clip
        try:
            picture = decode(data, min_side=clip.image_size).image
        except BadImageError as e:
            raise ConfigError(f"cannot search by {name or 'the picture'}: {e}") from None
        return clip.encode_pixels(torch.stack([clip.preprocess(picture)]))[0]


class OnnxEmbedder:
    """Words only; a request with a picture term takes the torch path instead."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder

    def texts(self, texts: list[str]) -> np.ndarray:
        return self.encoder.encode(texts)

    def image(self, data: bytes, name: str) -> np.ndarray:
        raise RuntimeError("the ONNX text tower cannot embed pictures")
