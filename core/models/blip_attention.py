"""Faster attention for BLIP inference, same results as transformers' eager modules (swapped in
place after loading; parameters and state dicts unchanged).

Vision encoder: one fused `scaled_dot_product_attention` call instead of matmul, scale, softmax
and matmul over 577×577 scores per head (the vision tower is most of captioning and of a cold
rerank); or, where it measured faster on this machine, upstream's own three steps one picture at a
time, whose scores stay in the CPU's cache (bf16 on a 2-core AMD EPYC with AVX512-BF16: 16
pictures' attention 141 -> 70 ms a layer, the ITM vision tower ~15 % faster; fp32 there: 131 ->
151 ms, so the fused kernel stays).

ITM text encoder and captioner decoder: cross-attention with the key and value projections
folded into the query side ("weight absorption"). Reranking scores one short text against N
pictures; upstream cross-attention projects every picture's 577 vision tokens through W_k and
W_v in every layer (2·N·577·E² multiply-adds), nearly all of a warm-cache rerank. Since
q·(W_k x + b_k) = (W_kᵀq)·x + q·b_k, and the second term is the same for every key (softmax
drops it), each head's query can be mapped into the vision space once and dotted with the raw
states; likewise Σ aᵢ(W_v xᵢ + b_v) = W_v(Σ aᵢ xᵢ) + b_v. That costs 2·N·577·E·H·T instead:
E/(H·T) times less (≈ 6× for BLIP base, a 10-token query). Used only when it is cheaper
(H·T < E); otherwise upstream runs. The captioner's decoder uses it too: one token a step
(T = 1), it caches no cross keys and values, whose projection of every picture's vision tokens
was about a third of base BLIP's decoding time for a batch of 16.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from transformers.models.blip.modeling_blip import BlipAttention
from transformers.models.blip.modeling_blip_text import BlipTextSelfAttention


class FusedVisionAttention(BlipAttention):
    """Inference-only: upstream's vision self-attention as one fused kernel, or picture by picture
    where that measured faster (`per_picture_is_faster`); no weights returned."""

    def forward(self, hidden_states: torch.Tensor, **kwargs: Any) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        batch, tokens, width = hidden_states.shape
        qkv = self.qkv(hidden_states).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if batch > 1 and per_picture_is_faster(qkv[0, :1], self.scale):
            context = attend_pictures(qkv[0], qkv[1], qkv[2], self.scale)
        else:
            context = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], scale=self.scale)
        return self.projection(context.transpose(1, 2).reshape(batch, tokens, width)), None


def attend_pictures(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
                    buffers: tuple[torch.Tensor, ...] | None = None) -> torch.Tensor:
    """Upstream's eager attention (scaled product, softmax, product) one picture at a time, its
    scores in buffers allocated once a call: fresh pages for every picture's 8 MB of scores cost
    about as much as the products (2-core AMD EPYC)."""
    batch, heads, tokens, _ = q.shape
    scaled, scores, probs = buffers or attention_buffers(q)
    context = torch.empty_like(q)
    for i in range(batch):
        torch.mul(q[i], scale, out=scaled)
        torch.matmul(scaled, k[i].transpose(-1, -2), out=scores)
        torch.ops.aten._softmax.out(scores, -1, False, out=probs)
        torch.matmul(probs, v[i], out=context[i])
    return context


def attention_buffers(q: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One picture's scaled query, scores and their softmax, for `attend_pictures` to reuse."""
    heads, tokens = q.shape[1], q.shape[2]
    return torch.empty_like(q[0]), q.new_empty(heads, tokens, tokens), q.new_empty(heads, tokens, tokens)


_PER_PICTURE: dict[tuple[Any, ...], bool] = {}
_PER_PICTURE_MARGIN = 0.8  # its time against the fused kernel's: a close call keeps the fused one


def per_picture_is_faster(query: torch.Tensor, scale: float) -> bool:
    """Whether attention picture by picture ran faster than the fused kernel on two pictures'
    heads of this shape, dtype and thread count on this CPU: timed once a process (~0.1 s for base
    BLIP), never assumed from the CPU's features. A GPU keeps the fused kernel."""
    if query.device.type != "cpu":
        return False
    key = (tuple(query.shape[1:]), query.dtype, torch.get_num_threads())
    if key not in _PER_PICTURE:
        q, k, v = (torch.randn(2, *query.shape[1:], dtype=query.dtype) for _ in range(3))
        buffers = attention_buffers(q)
        fused = _best_time(lambda: F.scaled_dot_product_attention(q, k, v, scale=scale))
        apart = _best_time(lambda: attend_pictures(q, k, v, scale, buffers))
        _PER_PICTURE[key] = apart < _PER_PICTURE_MARGIN * fused
    return _PER_PICTURE[key]


def _best_time(run: Any, repeats: int = 3) -> float:
    run()  # the warm-up: oneDNN's kernels for this shape
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


class AbsorbedCrossAttention(BlipTextSelfAttention):
    """Inference-only: same parameters and state dict as `BlipTextSelfAttention`."""

    def forward(  # type: ignore[override]
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Any = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        heads, size = self.num_attention_heads, self.attention_head_size
        width = self.key.in_features
        tokens = hidden_states.shape[1]
        # A generation cache is left alone: the folded form needs no cached keys or values, so
        # every decoding step reads the raw vision states instead (and the prefill that would
        # project all 577 of them through W_k and W_v in every layer is never paid).
        if encoder_hidden_states is None or heads * tokens >= width:
            return super().forward(hidden_states, attention_mask, encoder_hidden_states,
                                   encoder_attention_mask, cache, **kwargs)
        batch = hidden_states.shape[0]
        query = self.query(hidden_states).view(batch, tokens, heads, size).transpose(1, 2)  # B,H,T,d
        w_key = self.key.weight.view(heads, size, width)
        w_value = self.value.weight.view(heads, size, width)
        # Each head's query in the vision space, scaled as upstream scales the scores.
        query_in_vision = torch.einsum("bhtd,hde->bhte", query, w_key) / math.sqrt(size)
        # (B, H·T, E) against (B, N, E): one batched matmul per picture, the states never copied.
        flat = query_in_vision.reshape(batch, heads * tokens, width)
        scores = torch.bmm(flat, encoder_hidden_states.transpose(1, 2)).view(batch, heads, tokens, -1)
        if encoder_attention_mask is not None:  # upstream reads this one in cross-attention
            scores = scores + encoder_attention_mask.to(scores.device)
        probs = torch.softmax(scores, dim=-1)
        mixed = torch.bmm(self.dropout(probs).reshape(batch, heads * tokens, -1), encoder_hidden_states)
        mixed = mixed.view(batch, heads, tokens, width)
        context = torch.einsum("bhte,hde->bhtd", mixed, w_value) + self.value.bias.view(1, heads, 1, size)
        context = context.permute(0, 2, 1, 3).reshape(batch, tokens, heads * size)
        return context, probs


def fuse_vision_attention(vision_model: torch.nn.Module) -> int:
    """Switch a BLIP vision encoder's self-attention (in place) to the fused form; returns how
    many layers were switched."""
    switched = 0
    for layer in vision_model.encoder.layers:
        if type(layer.self_attn) is BlipAttention:
            layer.self_attn.__class__ = FusedVisionAttention
            switched += 1
    return switched


def absorb_cross_attention(text_model: torch.nn.Module) -> int:
    """Switch every cross-attention of a BLIP text model (in place) to the absorbed form; returns
    how many were switched."""
    switched = 0
    for layer in getattr(text_model.encoder, "layer", []):
        cross = getattr(layer, "crossattention", None)
        if cross is not None and type(cross.self) is BlipTextSelfAttention:
            cross.self.__class__ = AbsorbedCrossAttention
            switched += 1
    return switched
