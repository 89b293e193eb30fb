"""Where and in which precision models run.

bf16 *weights* pay off only where torch's bf16 matrix products beat its fp32 ones. Measured: on a
CPU with AMX, ViT-B-32 embeds ~5x faster than fp32 with cosine >= 0.9999; on an AVX2-only CPU bf16
falls back to scalar code, hundreds of times slower; and on a 2-core Intel Xeon with AVX512-BF16
but no AMX, oneDNN's bf16 products ran at 0.55x fp32's (ViT-B-32: 13.6 against 25.7 img/s). The
CPU's flags do not say which, so `auto` times one product both ways (`cpu_has_fast_bf16`).
"""

from __future__ import annotations

import functools
import logging
import time
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


log = logging.getLogger(__name__)
# bf16 is taken when its product takes at most this share of fp32's time: a clear win only, since
# bf16 also costs a little accuracy (measured gaps: 0.55x slower on AVX512-BF16 alone, ~5x faster
# with AMX, so the margin leaves no CPU near the line).
BF16_FASTER = 0.8


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether torch's bf16 matrix products on this CPU are measurably faster than fp32: oneDNN
    must support bf16 here, and a (256 x 768) x (768 x 768) product, timed both ways in turns on
    one thread (best of 5, ~50 ms in all, once per process), must take at most BF16_FASTER of
    fp32's time."""
    if not onednn_has_bf16():
        return False
    ratio = bf16_speed_ratio()
    log.info("bf16 / fp32 time of a matrix product on this CPU: %.2f", ratio)
    return ratio <= BF16_FASTER


def onednn_has_bf16() -> bool:
    """oneDNN runs bf16 products on this CPU with bf16 instructions (AVX512-BF16, AMX), not by
    conversion: the flags' answer, which says nothing of speed."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def bf16_speed_ratio(rounds: int = 5) -> float:
    """Best bf16 time over best fp32 time of the same linear layer, on one thread: the kernels'
    speed, which is what differs between precisions. On all of torch's threads a product this
    small waits for the scheduler whenever other programs load the CPU, and the ratio said
    nothing: 0.09-1.08 with two busy processes beside it on a 2-core AVX512-BF16 EPYC (where a
    quiet CPU measures 0.23-0.35), so a busy machine could run a whole index in fp32 at a third
    of the speed; on one thread 0.14-0.32 busy, 0.26-0.30 quiet."""
    x = torch.randn(256, 768)
    pairs = {dt: (torch.nn.Linear(768, 768).to(dt), x.to(dt)) for dt in (torch.float32, torch.bfloat16)}
    best = dict.fromkeys(pairs, float("inf"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.inference_mode():
            for layer, inp in pairs.values():
                layer(inp)  # first call: oneDNN picks and caches its kernel
            for _ in range(rounds):
                for dt, (layer, inp) in pairs.items():
                    t = time.perf_counter()
                    layer(inp)
                    best[dt] = min(best[dt], time.perf_counter() - t)
    finally:
        torch.set_num_threads(threads)
    return best[torch.bfloat16] / best[torch.float32]


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
