"""`imgsearch query`: CLIP text vector -> nearest images in Qdrant -> BLIP ITM rerank of the top K."""

from __future__ import annotations

import numpy as np
import torch

from imgsearch.models import Models
from imgsearch.stores import Stores
from imgsearch.vision_states import open_state_cache, vision_states

from .fusion import FUSIONS, fuse
from .hits import Hit, hit, nearest
from .limits import check_query


def search(
    text: str,
    stores: Stores,
    models: Models,
    *,
    limit: int = 10,
    rerank_k: int = 20,
    fusion: str = "itm+clip",
) -> list[Hit]:
    check_query(text, limit, rerank_k)
    vector = models.clip.encode_texts([text])[0]
    return search_vector(vector, stores, models, limit=limit, rerank_k=rerank_k, fusion=fusion, text=text)


def search_vector(
    vector: np.ndarray,
    stores: Stores,
    models: Models,
    *,
    limit: int,
    rerank_k: int = 0,
    fusion: str = "itm+clip",
    text: str | None = None,
) -> list[Hit]:
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}")
    ranked = nearest(vector, stores, max(limit, rerank_k))
    if not ranked or rerank_k <= 0 or text is None:
        return [hit(info, s) for info, s in ranked[:limit]]
    head, tail = ranked[:rerank_k], ranked[rerank_k:]
    itm = models.itm
    states = vision_states([info for info, _ in head], itm, open_state_cache(models.settings, itm),
                           models.settings.decode_workers)
    scorable = [(info, s) for info, s in head if info.id in states]
    hits: list[Hit] = []
    if scorable:
        match, itc = itm.score(text, torch.stack([states[info.id] for info, _ in scorable]))
        for (info, clip_score), m, c in zip(scorable, match, itc):
            hits.append(hit(info, clip_score, m, fuse(fusion, m, clip_score, c)))
        hits.sort(key=lambda h: h.score, reverse=True)
    unreadable = [hit(info, s) for info, s in head if info.id not in states]
    return (hits + unreadable + [hit(info, s) for info, s in tail])[:limit]
