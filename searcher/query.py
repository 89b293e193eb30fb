"""The one interpreter of a `SearchRequest`: the terms' CLIP vectors summed by weight (`--not`
terms subtract, as rclip's `-`), the nearest pictures that pass the filters (inside the vector
engine), the top K reranked by BLIP ITM on the positive words (a picture ITM says matches a
`--not` phrase is pushed down by that probability), then the page. With filters and no terms,
the catalog lists the pictures by date."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgsearch.errors import ConfigError
from imgsearch.stores import Stores

from .embed import Embedder
from .filters import resolve
from .fusion import FUSIONS, fuse
from .hits import Hit, hit, nearest
from .request import IMAGE, INDEXED, TEXT, SearchRequest


class UnknownImageError(ConfigError):
    """A term names an image id the index does not hold."""


def run(request: SearchRequest, stores: Stores, embedder: Embedder, models: Any = None,
        fusion: str = "itm+clip") -> list[Hit]:
    """`models` (imgsearch.models.Models) is needed only to rerank: without it, CLIP order."""
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}")
    request.check()
    filters = resolve(request, stores.catalog)
    if filters is None:  # a camera no picture has: nothing can match
        return []
    if not request.terms:
        infos = stores.catalog.listing(filters.folders, filters.date_from, filters.date_until, filters.cameras,
                                       newest_first=request.sort != "oldest", limit=request.limit,
                                       offset=request.offset)
        return [hit(info, None) for info in infos]
    vector = query_vector(request, stores, embedder)
    shown = request.offset + request.limit
    ranked = nearest(vector, stores, max(shown, request.rerank_k), filters.point_filter())
    hits = _rerank(request, ranked, models, fusion) if models is not None else [hit(i, s) for i, s in ranked]
    hits = hits[:shown]
    if request.sort != "relevance":  # the pictures that would be shown, by date (undated last)
        dated = sorted((h for h in hits if h.date), key=lambda h: h.date, reverse=request.sort == "newest")
        hits = dated + [h for h in hits if not h.date]
    return hits[request.offset:shown]


def query_vector(request: SearchRequest, stores: Stores, embedder: Embedder) -> np.ndarray:
    """Σ weight · unit vector of each term, normalised."""
    texts = [t for t in request.terms if t.kind == TEXT]
    vectors: list[np.ndarray] = list(embedder.texts([t.text for t in texts])) if texts else []
    weights = [t.weight for t in texts]
    indexed = [t for t in request.terms if t.kind == INDEXED]
    if indexed:
        stored = stores.vectors.get_vectors([t.image_id for t in indexed])
        for t in indexed:
            if t.image_id not in stored:
                raise UnknownImageError(f"image {t.image_id} is not indexed")
            vectors.append(stored[t.image_id])
            weights.append(t.weight)
    for t in request.terms:
        if t.kind == IMAGE:
            vectors.append(embedder.image(t.data, t.text))
            weights.append(t.weight)
    total = np.sum([w * v / max(float(np.linalg.norm(v)), 1e-12) for w, v in zip(weights, vectors)], axis=0)
    norm = float(np.linalg.norm(total))
    if norm < 1e-6:
        raise ConfigError("the query's terms cancel out: what is left to look for?")
    return (total / norm).astype(np.float32)


def _rerank(request: SearchRequest, ranked: list[tuple[Any, float]], models: Any, fusion: str) -> list[Hit]:
    """ITM on the top K for the positive words; CLIP order below K and for picture-only queries."""
    positive, negative = request.positive_words, request.negative_words
    if not positive or request.rerank_k <= 0 or not ranked:
        return [hit(info, s) for info, s in ranked]
    import torch

    from imgsearch.vision_states import open_state_cache, vision_states

    head, tail = ranked[:request.rerank_k], ranked[request.rerank_k:]
    itm = models.itm
    states = vision_states([info for info, _ in head], itm, open_state_cache(models.settings, itm),
                           models.settings.decode_workers)
    scorable = [(info, s) for info, s in head if info.id in states]
    hits: list[Hit] = []
    if scorable:
        stacked = torch.stack([states[info.id] for info, _ in scorable])
        text = " and ".join(positive)
        match, itc = itm.score(text, stacked)
        penalty = [0.0] * len(scorable)
        for phrase in negative:
            against, _ = itm.score(phrase, stacked)
            penalty = [max(p, a) for p, a in zip(penalty, against)]
        for (info, clip_score), m, c, p in zip(scorable, match, itc, penalty):
            hits.append(hit(info, clip_score, m, fuse(fusion, m, clip_score, c) - p))
        hits.sort(key=lambda h: h.score, reverse=True)  # type: ignore[arg-type, return-value]
    unreadable = [hit(info, s) for info, s in head if info.id not in states]
    return hits + unreadable + [hit(info, s) for info, s in tail]


def search(text: str, stores: Stores, models: Any, *, limit: int = 10, rerank_k: int = 20,
           fusion: str = "itm+clip") -> list[Hit]:
    """Words only, CLIP then ITM: the evaluation's and the benchmark's entry."""
    from .embed import TorchEmbedder
    from .request import Term

    request = SearchRequest((Term(TEXT, text),), limit=limit, rerank_k=rerank_k)
    return run(request, stores, TorchEmbedder(models), models, fusion)
