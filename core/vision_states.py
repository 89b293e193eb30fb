"""ITM vision states for indexed files: from the on-disk cache, else computed and cached.
Used by the searcher at query time and by `index --precompute-rerank` ahead of it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch

from imgsearch.errors import BadImageError
from imgsearch.imaging import decode
from imgsearch.models.blip import ItmScorer
from imgsearch.settings import Settings
from imgsearch.stores.catalog import FileInfo
from imgsearch.stores.state_cache import VisionStateCache


def open_state_cache(settings: Settings, itm: ItmScorer) -> VisionStateCache:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", itm.model_id)[-60:].strip("-")
    return VisionStateCache(settings.rerank_cache_dir / slug, settings.rerank_cache_mb * 1024**2)


def _load(path: str, size: int):  # type: ignore[no-untyped-def]
    try:
        with open(path, "rb") as f:
            return decode(f.read(), min_side=size).image
    except (OSError, BadImageError):
        return None


def vision_states(
    files: Sequence[FileInfo], itm: ItmScorer, cache: VisionStateCache, workers: int, batch: int = 16
) -> dict[int, torch.Tensor]:
    """States by file id; files that can no longer be read are left out."""
    out: dict[int, torch.Tensor] = {}
    todo = []
    for f in files:
        cached = cache.get(f.sha256) if f.sha256 else None
        if cached is not None:
            out[f.id] = cached
        else:
            todo.append(f)
    if not todo:
        return out
    size = int(itm.processor.image_processor.size["height"])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        images = list(pool.map(lambda f: _load(f.path, size), todo))
    ready = [(f, im) for f, im in zip(todo, images) if im is not None]
    for i in range(0, len(ready), batch):
        chunk = ready[i:i + batch]
        states = itm.vision_states([im for _, im in chunk])
        for (f, _), s in zip(chunk, states):
            out[f.id] = s
            if f.sha256:
                cache.put(f.sha256, s)
    return out
