"""What a query returns: one hit's shape, the same in every interface. No torch here: the cold
`query --no-rerank` path uses it too."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgsearch.stores.catalog import FileInfo


@dataclass(frozen=True)
class Hit:
    """One picture answering a search. `as_json` is the one JSON shape of a hit: the CLI's
    `--json`, the HTTP API and the page all use it (`from_json` reads it back in a client)."""

    path: str
    score: float | None  # the final score: fused when reranked, else the CLIP cosine; None in a listing
    clip_score: float | None
    itm_score: float | None  # ITM match probability; None when not reranked
    caption: str | None
    width: int | None
    height: int | None
    taken_at: datetime | None  # EXIF DateTimeOriginal, when the picture has one
    file_id: int
    size: int | None = None  # bytes on disk when indexed
    date: datetime | None = None  # taken_at, else the file's modification time
    date_source: str | None = None  # "exif" | "file"
    camera: str | None = None
    match: float | None = None  # how likely it matches the words (ITM probability; 1.0 for a name match)
    explain: dict[str, Any] | None = None  # why it matched, when asked (`searcher.query`)
    text: str | None = None  # the text read in the picture (OCR), when it has some
    tags: dict[str, float] | None = None  # zero-shot tags, label -> probability (None: not tagged yet)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.file_id, "path": self.path, "folder": os.path.dirname(self.path),
            "name": os.path.basename(self.path), "score": self.score, "clip_score": self.clip_score,
            "itm_score": self.itm_score, "caption": self.caption, "width": self.width, "height": self.height,
            "size": self.size, "taken_at": _iso(self.taken_at), "date": _iso(self.date),
            "date_source": self.date_source, "camera": self.camera, "match": self.match, "explain": self.explain,
            "text": self.text, "tags": self.tags,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Hit:
        return cls(d["path"], d["score"], d["clip_score"], d["itm_score"], d["caption"], d["width"], d["height"],
                   _parse(d["taken_at"]), d["id"], d["size"], _parse(d["date"]), d["date_source"], d["camera"],
                   d.get("match"), d.get("explain"), d.get("text"), d.get("tags"))


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def hit(info: FileInfo, clip: float | None, itm: float | None = None, score: float | None = None,
        match: float | None = None, explain: dict[str, Any] | None = None) -> Hit:
    return Hit(info.path, clip if score is None else score, clip, itm, info.caption, info.width, info.height,
               info.taken_at, info.id, info.size, info.date, info.date_source, info.camera, match, explain,
               info.text, info.tags)
