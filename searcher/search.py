"""`imgsearch query`: CLIP text vector -> nearest images in Qdrant -> BLIP ITM rerank of the top K."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import torch

from imgsearch.models import Models
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.vision_states import open_state_cache, vision_states

from .fusion import FUSIONS, fuse


@dataclass(frozen=True)
class Hit:
    path: str
    score: float  # the final score: fused when reranked, else the CLIP cosine
    clip_score: float
    itm_score: float | None  # ITM match probability; None when not reranked
    caption: str | None
    width: int | None
    height: int | None
    taken_at: datetime | None
    file_id: int
    size: int | None = None  # bytes on disk when indexed

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path, "score": self.score, "clip_score": self.clip_score,
            "itm_score": self.itm_score, "caption": self.caption, "width": self.width,
            "height": self.height, "taken_at": self.taken_at.isoformat() if self.taken_at else None,
            "size": self.size, "id": self.file_id,
        }


def _hit(info: FileInfo, clip: float, itm: float | None = None, score: float | None = None) -> Hit:
    return Hit(info.path, clip if score is None else score, clip, itm, info.caption, info.width, info.height,
               info.taken_at, info.id, info.size)


def search(
    text: str,
    stores: Stores,
    models: Models,
    *,
    limit: int = 10,
    rerank_k: int = 20,
    fusion: str = "itm+clip",
) -> list[Hit]:
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
    found = stores.vectors.search(vector, max(limit, rerank_k))
    infos = stores.catalog.get(i for i, _ in found)
    ranked = [(infos[i], s) for i, s in found if i in infos]  # a point without a row is a crash leftover
    if not ranked or rerank_k <= 0 or text is None:
        return [_hit(info, s) for info, s in ranked[:limit]]
    head, tail = ranked[:rerank_k], ranked[rerank_k:]
    itm = models.itm
    states = vision_states([info for info, _ in head], itm, open_state_cache(models.settings, itm),
                           models.settings.decode_workers)
    scorable = [(info, s) for info, s in head if info.id in states]
    hits: list[Hit] = []
    if scorable:
        match, itc = itm.score(text, torch.stack([states[info.id] for info, _ in scorable]))
        for (info, clip_score), m, c in zip(scorable, match, itc):
            hits.append(_hit(info, clip_score, m, fuse(fusion, m, clip_score, c)))
        hits.sort(key=lambda h: h.score, reverse=True)
    unreadable = [_hit(info, s) for info, s in head if info.id not in states]
    return (hits + unreadable + [_hit(info, s) for info, s in tail])[:limit]
