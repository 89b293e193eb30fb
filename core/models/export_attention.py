"""Self-attention in a layout that exports to a lean ONNX graph, swapped into a tower's private
copy before it is exported.

torch's `nn.MultiheadAttention` traces (with gradients on, as the exporter needs) to its generic
path: the packed q/k/v projection unflattened, transposed as one tensor three times the width and
made contiguous, then gathered apart, each part transposed into heads, and the batch-first input
transposed to sequence-first and back. In ONNX Runtime those copies were 17 % of the int8 CLIP
image tower's time (Transpose 13 %, Gather 4 %; ViT-B-32-256, AMD EPYC with AVX512-VNNI).
`SelfAttention` computes the same function with three projections of one input (ONNX Runtime
quantizes their shared input once) and the attention itself as one node, ONNX Runtime's
`com.microsoft.MultiHeadAttention` (`attend`: its fused CPU kernel, flash attention, no score
matrix written out, no heads transposed in and out): Transpose 129 -> 36 ms for 32 pictures with
the projections apart, the int8 tower 31-34 -> 38-40 img/s there, and 41.2 -> 44.1 img/s more with
the fused node (six alternating runs of 64 pictures; cosine to torch fp32 unchanged, min 0.9997).

Only what it reproduces is swapped (`plain_self_attention`): batch-first, self-attention with one
embedding width, biases, no mask, no added key/value bias or zero attention, no dropout; anything
else (a cross-attention pool, a masked text tower) is called through the original module.

BLIP's vision tower attends over 577 tokens, where the attention (scores, softmax, mixing: fp32
products beside the int8 projections) was a quarter of its int8 time. `BlipSelfAttention` exports
it the same way: ITM's int8 tower 0.309 -> 0.279 s a picture in batches of 16, 0.284 -> 0.261 in
batches of 4 (six alternating runs each, the same states: cosine to torch fp32 per picture min
0.9991 either way). The fused node needs ONNX Runtime's com.microsoft opset (the CPU build has it);
a build that fails costs speed only (the tower stays with torch).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def _projections(weight: torch.Tensor, bias: torch.Tensor) -> tuple[nn.Linear, nn.Linear, nn.Linear]:
    """A packed q/k/v projection (rows: q's, then k's, then v's) as three fp32 Linear layers."""
    width = weight.shape[1]
    layers = tuple(nn.Linear(width, width) for _ in range(3))
    for i, linear in enumerate(layers):
        linear.weight.data.copy_(weight.detach()[i * width:(i + 1) * width].float())
        linear.bias.data.copy_(bias.detach()[i * width:(i + 1) * width].float())
    return layers  # type: ignore[return-value]


def _fp32_copy(linear: nn.Linear) -> nn.Linear:
    """A Linear layer's weights and bias copied into a new fp32 one."""
    copy = nn.Linear(linear.in_features, linear.out_features)
    copy.load_state_dict({k: v.float() for k, v in linear.state_dict().items()})
    return copy


class SelfAttention(nn.Module):
    """`nn.MultiheadAttention`'s self-attention, its weights copied (fp32), same call and result."""

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        width, heads = mha.embed_dim, mha.num_heads
        self.heads, self.scale = heads, (width // heads) ** -0.5
        self.q, self.k, self.v = _projections(mha.in_proj_weight, mha.in_proj_bias)
        self.out = _fp32_copy(mha.out_proj)
        self.original = mha  # for calls it does not reproduce

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, need_weights: bool = True,
                attn_mask: torch.Tensor | None = None, **kwargs: object) -> tuple[torch.Tensor, None]:
        if key is not query or value is not query or attn_mask is not None or need_weights or kwargs:
            return self.original(query, key, value, need_weights=need_weights, attn_mask=attn_mask, **kwargs)
        return self.out(attend(self.q(query), self.k(query), self.v(query), self.heads, self.scale)), None


def plain_self_attention(mha: nn.Module) -> bool:
    """Whether `SelfAttention` reproduces `mha` (see the module's docstring)."""
    return (isinstance(mha, nn.MultiheadAttention) and mha.batch_first and mha._qkv_same_embed_dim
            and mha.in_proj_bias is not None and mha.out_proj.bias is not None and mha.bias_k is None
            and mha.bias_v is None and not mha.add_zero_attn and mha.dropout == 0.0
            and mha.embed_dim % mha.num_heads == 0)


def swap_self_attention(module: nn.Module) -> int:
    """Replace, in place, every attention of `module` that `SelfAttention` reproduces; returns how
    many. For a private copy made to be exported, never for a model in use."""
    swapped = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if plain_self_attention(child):
                setattr(parent, name, SelfAttention(child))
                swapped += 1
    return swapped


class _Attend(torch.autograd.Function):
    """softmax(q·kᵀ·scale)·v over `heads` heads of (batch, tokens, width) q, k and v, with
    torch's operations; exported as one `com.microsoft.MultiHeadAttention` node."""

    @staticmethod
    def forward(ctx: object, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
                scale: float) -> torch.Tensor:
        batch, tokens, width = q.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, tokens, heads, width // heads).transpose(1, 2)

        mixed = torch.softmax(split(q) @ split(k).transpose(-1, -2) * scale, dim=-1) @ split(v)
        return mixed.transpose(1, 2).reshape(batch, tokens, width)

    @staticmethod
    def symbolic(g: Any, q: Any, k: Any, v: Any, heads: int, scale: float) -> Any:  # the exporter's graph
        out = g.op("com.microsoft::MultiHeadAttention", q, k, v, num_heads_i=heads, scale_f=scale)
        out.setType(q.type())  # (batch, tokens, width), like q
        return out


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, scale: float) -> torch.Tensor:
    """Multi-head attention of (batch, tokens, width) projections: torch's operations when run,
    ONNX Runtime's fused CPU kernel when exported (the export needs the com.microsoft opset)."""
    return _Attend.apply(q, k, v, heads, scale)  # type: ignore[no-any-return]


class BlipSelfAttention(nn.Module):
    """BLIP's vision self-attention (packed q/k/v projection, `projection` out), its weights
    copied (fp32), exported through `attend`: same call and states as transformers' module (no
    attention weights returned)."""

    def __init__(self, attention: nn.Module) -> None:
        super().__init__()
        self.heads, self.scale = int(attention.num_heads), float(attention.scale)
        self.q, self.k, self.v = _projections(attention.qkv.weight, attention.qkv.bias)
        self.projection = _fp32_copy(attention.projection)

    def forward(self, hidden_states: torch.Tensor, **kwargs: object) -> tuple[torch.Tensor, None]:
        x = hidden_states
        return self.projection(attend(self.q(x), self.k(x), self.v(x), self.heads, self.scale)), None


def swap_blip_vision_attention(vision_model: nn.Module) -> int:
    """Replace, in place, every layer's self-attention of a BLIP vision encoder by
    `BlipSelfAttention`; returns how many. For a private copy made to be exported."""
    layers = getattr(getattr(vision_model, "encoder", None), "layers", [])
    for layer in layers:
        layer.self_attn = BlipSelfAttention(layer.self_attn)
    return len(layers)
