"""What a query returns, and the plain nearest-neighbour step every query starts with. No torch
here: the cold `query --no-rerank` path (`light`) uses it too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo


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


def hit(info: FileInfo, clip: float, itm: float | None = None, score: float | None = None) -> Hit:
    return Hit(info.path, clip if score is None else score, clip, itm, info.caption, info.width, info.height,
               info.taken_at, info.id, info.size)


def nearest(vector: np.ndarray, stores: Stores, limit: int) -> list[tuple[FileInfo, float]]:
    """The `limit` nearest catalogued images with their CLIP cosine, best first."""
    found = stores.vectors.search(vector, limit)
    infos = stores.catalog.get(i for i, _ in found)
    return [(infos[i], s) for i, s in found if i in infos]  # a point without a row is a crash leftover
