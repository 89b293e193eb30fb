"""Where and in which precision models run.

bf16 *weights* pay off only on CPUs with native bf16 matrix units (AMX / AVX512-BF16): measured
on such a CPU, ViT-B-32 embeds ~5x faster than fp32 with cosine >= 0.9999. On a CPU without
them (AVX2 only) bf16 matmuls fall back to scalar code and are hundreds of times slower, so
`auto` picks fp32 there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from imgsearch.errors import ConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype

    def describe(self) -> str:
        return f"{self.device.type}/{str(self.dtype).removeprefix('torch.')}"


def cpu_has_fast_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_runtime(device: str = "auto", dtype: str = "auto") -> Runtime:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}: use auto, cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' asked for, but torch sees no CUDA GPU: use --device cpu")
    if dtype == "auto":
        if device == "cuda":
            chosen = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        else:
            chosen = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    elif dtype in _DTYPES:
        chosen = _DTYPES[dtype]
    else:
        raise ConfigError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return Runtime(torch.device(device), chosen)
