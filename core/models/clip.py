"""The CLIP encoder (open_clip): pictures and words into one normalised vector space."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from imgsearch.models.hub import cached_hub_file, is_local, require_hub
from imgsearch.models.profiles import ModelProfile
from imgsearch.models.runtime import Runtime


@dataclass
class ClipEncoder:
    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    runtime: Runtime
    model_id: str
    dim: int
    image_size: int

    @torch.inference_mode()
    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Preprocessed pixels (N, 3, H, W) -> L2-normalised float32 vectors (N, dim)."""
        x = pixels.to(self.runtime.device, self.runtime.dtype)
        return F.normalize(self.model.encode_image(x).float(), dim=-1).cpu().numpy()

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_pixels(torch.stack([self.preprocess(im) for im in images]))

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.runtime.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu().numpy()


def _pretrained_source(profile: ModelProfile) -> tuple[str | None, dict]:
    """The weights file to load, resolved without touching the network when it is cached, plus
    the preprocessing that goes with a pretrained tag."""
    import open_clip

    ref = profile.clip_pretrained
    if ref is None or profile.clip_model.startswith("local-dir:") or is_local(ref):
        return ref, {}
    cfg = open_clip.get_pretrained_cfg(profile.clip_model, ref)
    if not cfg:
        return ref, {}  # let open_clip explain the unknown tag
    preprocess = {"image_mean": cfg.get("mean"), "image_std": cfg.get("std"),
                  "image_interpolation": cfg.get("interpolation")}
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = hub.rstrip("/"), None
        if not hub.endswith("/"):
            repo, filename = hub.rsplit("/", 1)
        for name in ([filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]):
            if cached := cached_hub_file(repo, name):
                return cached, preprocess
    require_hub(f"CLIP {profile.clip_model}", ref, "IMGSEARCH_CLIP_PRETRAINED")
    return ref, preprocess


def load_clip(profile: ModelProfile, runtime: Runtime) -> ClipEncoder:
    import open_clip

    weights, preprocess_kw = _pretrained_source(profile)
    model, _, preprocess = open_clip.create_model_and_transforms(
        profile.clip_model,
        pretrained=weights,
        device=runtime.device,
        image_resize_mode=profile.clip_resize_mode,
        **{k: v for k, v in preprocess_kw.items() if v is not None},
    )
    model = model.to(runtime.dtype).eval()
    tokenizer = open_clip.get_tokenizer(profile.clip_model)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    with torch.inference_mode():
        dim = int(model.encode_text(tokenizer(["a"]).to(runtime.device)).shape[-1])
    return ClipEncoder(model, preprocess, tokenizer, runtime, profile.clip_id, dim, size)
