"""The ITM vision-state cache: round trip in bf16, damaged files ignored, size bound kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from imgsearch.stores.state_cache import VisionStateCache


def test_round_trip_is_bf16_and_close(tmp_path: Path) -> None:
    cache = VisionStateCache(tmp_path, max_bytes=10**9)
    states = torch.randn(65, 128)
    cache.put("ab" * 32, states)
    back = cache.get("ab" * 32)
    assert back is not None and back.dtype == torch.bfloat16
    assert torch.allclose(back.float(), states, atol=0.05, rtol=0.01)
    assert cache.get("cd" * 32) is None


def test_a_damaged_entry_reads_as_missing(tmp_path: Path) -> None:
    cache = VisionStateCache(tmp_path, max_bytes=10**9)
    cache.put("ab" * 32, torch.randn(4, 8))
    path = next(tmp_path.rglob("*.safetensors"))
    path.write_bytes(path.read_bytes()[:20])
    assert cache.get("ab" * 32) is None


def test_least_recently_used_entries_go_first(tmp_path: Path) -> None:
    one = torch.randn(64, 64)  # 8 KB in bf16
    keys = [f"{i:02d}" * 32 for i in range(8)]
    filling = VisionStateCache(tmp_path, max_bytes=10**9)
    for i, k in enumerate(keys):
        filling.put(k, one)
        p = next(tmp_path.rglob(f"{k}.safetensors"))
        os.utime(p, (time.time() - 100 + i, time.time() - 100 + i))
    cache = VisionStateCache(tmp_path, max_bytes=5 * 8_500)
    cache.get(keys[0])  # recently used: survives
    cache.evict()
    left = {p.stem for p in tmp_path.rglob("*.safetensors")}
    total = sum(p.stat().st_size for p in tmp_path.rglob("*.safetensors"))
    assert total <= 5 * 8_500
    assert keys[0] in left and keys[1] not in left and keys[7] in left
