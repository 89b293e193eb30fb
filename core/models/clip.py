"""The CLIP encoder (open_clip): pictures and words into one normalised vector space."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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
    # Chooses, at the first picture, what embeds pictures: an admitted ONNX Runtime variant of the
    # image tower or None for `model` itself (`image_export.attach`, set by `Models.clip`). At the
    # first picture, so that loading CLIP for words builds and checks nothing.
    pick_image_tower: Callable[[ClipEncoder], Callable[[np.ndarray], np.ndarray] | None] | None = None
    image_runtime: str = "torch"  # what embeds pictures, once picked: torch, onnx or onnx-int8
    # What embeds a few texts at a time (a query's words): the text tower exported to ONNX beside
    # the index, in a session kept warm (`text_export.WordTower`), or None for `model` itself.
    # A query's words are a batch of one: every weight is read for ~10 tokens, so the time is
    # memory traffic and per-operator overhead, where onnxruntime's pre-packed fp32 weights beat
    # torch (ViT-B-32, AMX Xeon: 15 ms against 25 in bf16, 34 in fp32). Many texts (a tag
    # vocabulary) are arithmetic, and stay with torch.
    word_tower: Callable[[], Callable[[list[str]], np.ndarray] | None] | None = None
    expected_pictures: int = 0  # how many pictures the run in hand will embed (`expect`)
    _tower: Callable[[np.ndarray], np.ndarray] | None = field(default=None, init=False, repr=False)
    _picked: bool = field(default=False, init=False, repr=False)
    _pick_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def expect(self, pictures: int) -> None:
        """Say how many pictures the coming run embeds: a run large enough may build the ONNX
        tower that a smaller one went without (`image_export.pick`), so torch is picked again."""
        with self._pick_lock:
            self.expected_pictures = pictures
            if self._tower is None:
                self._picked = False

    def encode_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Preprocessed pixels (N, 3, H, W) -> L2-normalised float32 vectors (N, dim): the one way
        pictures become vectors, by torch or by the ONNX tower picked for this model."""
        if not self._picked:
            with self._pick_lock:
                if not self._picked:
                    self._tower = self.pick_image_tower(self) if self.pick_image_tower else None
                    self._picked = True
        if self._tower is not None:
            return self._tower(pixels.float().numpy())
        with torch.inference_mode():
            x = pixels.to(self.runtime.device, self.runtime.dtype)
            return F.normalize(self.model.encode_image(x).float(), dim=-1).cpu().numpy()

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_pixels(torch.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, one per text."""
        tower = self.word_tower() if self.word_tower is not None and len(texts) <= FEW_TEXTS else None
        if tower is not None:
            return tower(list(texts))
        with torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.runtime.device)
            return F.normalize(encode_text_up_to_end(self.model, tokens).float(), dim=-1).cpu().numpy()

    def encode_templated(self, template: str, fills: Sequence[str], batch: int = 256) -> np.ndarray:
        """The vectors of `template.format(f)` for every fill, in order, as `encode_texts` gives
        them. The tower is causal, so the template's words before the fill come out the same
        whatever follows: they are computed once and each prompt runs only its own tokens
        (`encode_text_after`; 65% of the default tag vocabulary's tokens are its templates').
        Batches of fills of like length; a tower of another kind, or a prompt whose tokens do
        not start with the template's, takes the whole prompt."""
        texts = [template.format(f) for f in fills]
        head = template.split("{}", 1)[0].strip()
        if not head or not plain_causal_blocks(self.model):
            return self._encode_sorted(texts, batch)
        tokens, prefix = self.tokenizer(texts), self.tokenizer([head])[0]
        k = int(end_positions(self.model, prefix[None])[0])  # the template's tokens before its end token
        starts = (tokens[:, :k] == prefix[:k]).all(dim=1).tolist()  # BPE may join the fill to the template
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        whole = [i for i, ok in enumerate(starts) if not ok]
        if whole:
            out[whole] = self._encode_sorted([texts[i] for i in whole], batch)
        ends = end_positions(self.model, tokens)
        rest = sorted((i for i, ok in enumerate(starts) if ok), key=lambda i: int(ends[i]))
        with torch.inference_mode():
            head_ids = prefix[:k].to(self.runtime.device)
            for start in range(0, len(rest), batch):
                rows = rest[start:start + batch]
                suffix = tokens[rows, k:int(ends[rows].max()) + 1].to(self.runtime.device)
                vectors = encode_text_after(self.model, head_ids, suffix)
                out[rows] = F.normalize(vectors.float(), dim=-1).cpu().numpy()
        return out

    def _encode_sorted(self, texts: list[str], batch: int) -> np.ndarray:
        """`encode_texts` in batches of texts of like length: a batch runs to its longest text."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.concatenate([self.encode_texts([texts[i] for i in order[start:start + batch]])
                                  for start in range(0, len(order), batch)])
        out = np.empty_like(vectors)
        out[order] = vectors
        return out


FEW_TEXTS = 8  # up to this many texts at once go to `word_tower` when there is one


def encode_text_up_to_end(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip's `encode_text` run on the tokens up to the last end-of-text token of the batch.
    Its text tower is causal and pools at that token, so the padding after it cannot change the
    result: a short query computes ~6 positions instead of 77 (ViT-B-32: 35 ms -> a few ms). Other
    towers (HF text encoders, no causal mask, other pooling) take open_clip's own path."""
    if end_pool(model) is None:
        return model.encode_text(tokens)
    return encode_text_prefix(model, tokens[:, :int(end_positions(model, tokens).max()) + 1])


def end_positions(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Where each row's pooled token is, for towers `end_pool` accepts."""
    if end_pool(model) == "argmax":
        return tokens.argmax(dim=-1)
    return (tokens == getattr(model, "text_eos_id", None)).int().argmax(dim=-1)


def plain_causal_blocks(model: torch.nn.Module) -> bool:
    """Whether the text tower is one `encode_text_after` can run: pooled at its end token, and
    every block open_clip's own batch-first self-attention block."""
    from open_clip.transformer import ResidualAttentionBlock

    blocks = getattr(getattr(model, "transformer", None), "resblocks", None)
    return end_pool(model) is not None and blocks is not None and all(
        type(b) is ResidualAttentionBlock and not hasattr(b, "ln_1_kv")
        and isinstance(b.attn, torch.nn.MultiheadAttention) and b.attn.batch_first for b in blocks)


def encode_text_after(model: torch.nn.Module, head: torch.Tensor, tails: torch.Tensor) -> torch.Tensor:
    """`encode_text_prefix` of each row of `tails` (n, s) preceded by the same `head` ids (k,),
    whose positions, keys and values are computed once, not once per row: in every block each
    row's queries attend to the head's keys and values and to its own, causally. Only for towers
    `plain_causal_blocks` accepts; open_clip's own modules do all but the attention's split."""
    k, (n, s) = head.shape[0], tails.shape
    cast = model.transformer.get_cast_dtype()
    position = model.positional_embedding.to(cast)
    h = model.token_embedding(head[None]).to(cast) + position[:k]
    x = model.token_embedding(tails).to(cast) + position[k:k + s]
    seen = ~torch.ones(s, k + s, dtype=torch.bool, device=x.device).triu(k + 1)  # tail i: the head, tail <= i
    heads = model.transformer.resblocks[0].attn.num_heads

    def split(t: torch.Tensor) -> torch.Tensor:  # (rows, length, width) -> (rows, heads, length, head width)
        return t.unflatten(-1, (heads, t.shape[-1] // heads)).transpose(1, 2)

    for block in model.transformer.resblocks:
        mha = block.attn
        q, kt, vt = F.linear(block.ln_1(x), mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
        _, kh, vh = F.linear(block.ln_1(h), mha.in_proj_weight, mha.in_proj_bias).chunk(3, dim=-1)
        keys = torch.cat([split(kh).expand(n, -1, -1, -1), split(kt)], dim=2)
        values = torch.cat([split(vh).expand(n, -1, -1, -1), split(vt)], dim=2)
        attended = F.scaled_dot_product_attention(split(q), keys, values, attn_mask=seen)
        x = x + block.ls_1(mha.out_proj(attended.transpose(1, 2).flatten(2)))
        x = x + block.ls_2(block.mlp(block.ln_2(x)))
        h = block(h, attn_mask=model.attn_mask[:k, :k])
    return _pooled_output(model, model.ln_final(x), tails)


def _pooled_output(model: torch.nn.Module, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The text tower's output from its last states: pooled at each row's token, projected."""
    from open_clip.transformer import text_global_pool

    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    projection = model.text_projection
    if projection is None:
        return x
    return projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def end_pool(model: torch.nn.Module) -> str | None:
    """How the text tower finds the token it pools at ("argmax": the highest id, "eos": the first
    end-of-text id) when nothing after that token can change its output; None otherwise."""
    from open_clip.model import CLIP

    pool = getattr(model, "text_pool_type", None)
    if type(model) is not CLIP or model.attn_mask is None or pool not in ("argmax", "eos"):
        return None
    return pool


def encode_text_prefix(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """`encode_text` on tokens already cut after their end-of-text token (any length up to the
    context; the length is read from the tensor, so an ONNX export keeps it dynamic). Only for
    towers `end_pool` accepts."""
    n = tokens.shape[1]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:n].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:n, :n])
    return _pooled_output(model, model.ln_final(x), tokens)


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


@contextlib.contextmanager
def _no_random_init() -> Iterator[None]:
    """Build the model without drawing the random weights that the checkpoint then replaces
    (open_clip loads it strictly: every parameter and stored buffer). ViT-B-32 drew 150 M numbers:
    1.7 s of every process that loads CLIP. torch's init functions are process-wide, so models
    are loaded one at a time (`Models`), and only a model with a checkpoint is built this way.
    (transformers has such a context too, but importing it costs as much as it saves.)"""
    import torch.nn.init as init

    saved = {name: getattr(init, name) for name in _INIT_FUNCTIONS if hasattr(init, name)}
    try:
        for name in saved:
            setattr(init, name, _leave)
        yield
    finally:
        for name, function in saved.items():
            setattr(init, name, function)


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_")


def _leave(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
    return tensor


def load_clip(profile: ModelProfile, runtime: Runtime) -> ClipEncoder:
    import open_clip

    weights, preprocess_kw = _pretrained_source(profile)
    checkpoint = weights or profile.clip_model.startswith(("local-dir:", "hf-hub:"))  # these hold their weights
    with _no_random_init() if checkpoint else contextlib.nullcontext():
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
