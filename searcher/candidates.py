"""The pictures a search considers, best first, before any rerank: CLIP's nearest (`vector`),
the full-text index's best (`text`), or both fused by reciprocal rank (`hybrid`), as RRF does
for hybrid search elsewhere: a rank, unlike a cosine or a BM25 value, means the same in both
lists. Every candidate carries its CLIP cosine (looked up for text-only ones) so the rerank can
weigh it, and the words of the query it holds in its name, folders and caption. Their catalog
rows are read only for the few a search shows or reranks (`with_infos`): reading all 200 was a
fifth of a warm query."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.stores.fulltext import FIELDS, FullText

from .filters import Filters

RRF_K = 60  # the constant of reciprocal-rank fusion (Cormack et al.): damps the very first ranks
# Ranks that count in the fusion: the head of each list. Deeper ones only follow, by their best
# rank, so the order does not depend on how deep the lists were fetched (and fusing deeper lists
# measured worse: relation MRR 0.952 at 20, 0.943 at 60 to 200, held-out seed 2026).
FUSE_DEPTH = 20


@dataclass
class Candidate:
    id: int  # the file's
    clip: float | None  # cosine to the query vector; None in text mode
    ranks: dict[str, int] = field(default_factory=dict)  # "vector" / "text" -> rank from 1
    text: float | None = None  # BM25 relevance, when the full-text index found it
    words: dict[str, list[str]] = field(default_factory=dict)  # field -> the query's words in it
    named: bool = False  # its file name or folder names hold every word (`FullText.named`)
    info: FileInfo | None = None  # its catalog row, once read (`with_infos`)

    def coverage(self, words: list[str]) -> float:
        """Share of the query's words found in any of its fields."""
        if not words:
            return 0.0
        found = {w for f in FIELDS for w in self.words.get(f, ())}
        return len(found) / len(words)


def _fused_order(c: Candidate) -> tuple[float, int]:
    return -sum(1.0 / (RRF_K + r) for r in c.ranks.values() if r <= FUSE_DEPTH), min(c.ranks.values())


def gather(vector: np.ndarray | None, words: list[str], stores: Stores, fulltext: FullText, filters: Filters,
           depth: int) -> list[Candidate]:
    """Up to `depth` candidates from each source that is given (`vector` for CLIP, `words` for
    the full-text index), fused when both are. Words' evidence is filled in for all of them."""
    by_id: dict[int, Candidate] = {}
    if vector is not None:
        # a point without a row (a crash's leftover, until the next run's repair) is dropped when
        # the rows are read (`with_infos`)
        for rank, (i, cos) in enumerate(stores.vectors.search(vector, depth, filters.point_filter()), start=1):
            by_id[i] = Candidate(i, cos, {"vector": rank})
    if words:
        found = fulltext.search(words, depth, filters.folders, filters.date_from, filters.date_until, filters.cameras,
                                filters.tags)  # ids of rows: present
        new = [i for i, _ in found if i not in by_id]
        stored = stores.vectors.get_vectors(new) if vector is not None and new else {}
        for rank, (i, relevance) in enumerate(found, start=1):
            if i not in by_id:
                cos = float(stored[i] @ vector) if i in stored and vector is not None else None
                by_id[i] = Candidate(i, cos)
            by_id[i].ranks["text"], by_id[i].text = rank, relevance
        for i, per_field in fulltext.evidence(by_id, words).items():
            by_id[i].words = per_field
        for i in fulltext.named(by_id, words):
            by_id[i].named = True
    fused = sorted(by_id.values(), key=_fused_order)
    return fused[:depth] if vector is not None and words else fused


def with_infos(candidates: list[Candidate], stores: Stores) -> list[Candidate]:
    """The candidates with their catalog rows read (one query for those not read yet), less any
    without a row: a crash's leftover point, or a picture removed meanwhile by another process."""
    missing = [c.id for c in candidates if c.info is None]
    if missing:
        infos = stores.catalog.get(missing)
        for c in candidates:
            if c.info is None:
                c.info = infos.get(c.id)
    return [c for c in candidates if c.info is not None]
