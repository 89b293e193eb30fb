"""A size-bounded on-disk cache of BLIP ITM vision states, one file per image content hash.

Reranking spends most of its time in BLIP's vision encoder (base BLIP on CPU: ~0.14 s an image);
the states depend only on the picture, so they are kept between queries (bf16 keeps a base
model's 577x768 states at ~0.9 MB). Least recently used entries go first when the cache is full.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


class VisionStateCache:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._written = 0

    def _path(self, sha: str) -> Path:
        return self.folder / sha[:2] / f"{sha}.safetensors"

    def has(self, sha: str) -> bool:
        return self._path(sha).exists()

    def get(self, sha: str) -> torch.Tensor | None:
        path = self._path(sha)
        try:
            states = load_file(str(path))["states"]
            os.utime(path)  # recency for eviction
            return states
        except FileNotFoundError:
            return None
        except Exception:  # damaged (safetensors raises its own error type): recompute
            path.unlink(missing_ok=True)
            return None

    def put(self, sha: str, states: torch.Tensor) -> None:
        path = self._path(sha)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        os.close(fd)
        save_file({"states": states.detach().to(torch.bfloat16).contiguous().cpu()}, tmp)
        os.replace(tmp, path)  # atomic: readers never see half a file
        self._written += path.stat().st_size
        if self._written > self.max_bytes // 20:
            self._written = 0
            self.evict()

    def evict(self) -> None:
        entries = []
        for p in self.folder.glob("*/*.safetensors"):
            try:
                st = p.stat()
                entries.append((st.st_mtime, st.st_size, p))
            except FileNotFoundError:
                continue
        total = sum(size for _, size, _ in entries)
        for _, size, p in sorted(entries):
            if total <= self.max_bytes:
                break
            p.unlink(missing_ok=True)
            total -= size
