"""The one interpreter of a `SearchRequest`: the terms' CLIP vectors summed by weight (`--not`
terms subtract, as rclip's `-`); candidates that pass the filters from CLIP (inside the vector
engine) and from the words in names, folders and captions (`candidates`); the top K reranked by
BLIP ITM on the positive words (a picture ITM says matches a `--not` phrase is pushed down by
that probability) with the share of words found added; with `min_match`, only pictures that
likely match; then the page. With filters and no terms, the catalog lists pictures by date.

Concepts taught by example (`--concept`, imgsearch.concepts) steer the query vector by their
direction (w/|w|: the vector engine then ranks by the concept's logit), add their probability to
the score, and are part of the match the cutoff reads (a picture must be likely the concept and,
when there are words, likely match them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imgsearch.concepts import Concept
from imgsearch.errors import ConfigError
from imgsearch.stores import Stores
from imgsearch.stores.fulltext import FIELDS, FullText, query_words

from .candidates import Candidate, gather, with_infos
from .embed import Embedder
from .filters import resolve
from .fusion import FUSIONS, fuse
from .hits import Hit, hit
from .limits import MAX_RERANK_K
from .request import IMAGE, INDEXED, TEXT, VECTOR, WORDS_ONLY, SearchRequest
from .rerank import MATCH_DEPTH_BATCHES, Scored, rerank

# Weight of the share of the query's words found in a picture's name, folders and caption,
# beside the ITM probability and the CLIP cosine (measured: see the model card).
TEXT_WEIGHT = 1.0
# Candidates are fetched in blocks of this many, whatever the page: hybrid fusion's order depends
# on how deep each list goes, so every page of a search up to this depth sees the same order.
CANDIDATE_BLOCK = 200


class UnknownImageError(ConfigError):
    """A term names an image id the index does not hold."""


def run(request: SearchRequest, stores: Stores, embedder: Embedder | None, models: Any = None,
        fusion: str = "itm+clip", text_weight: float = TEXT_WEIGHT) -> list[Hit]:
    """`models` (imgsearch.models.Models) is needed only to rerank: without it, candidate order.
    `request.min_match` None counts as 0 here (the library fills in the index's default)."""
    if fusion not in FUSIONS:
        raise ValueError(f"unknown fusion {fusion!r}")
    request.check()
    filters = resolve(request, stores.catalog)
    concepts = _concepts(request, stores)
    if filters is None:  # a camera no picture has: nothing can match
        return []
    if not request.searches:
        infos = stores.catalog.listing(filters.folders, filters.date_from, filters.date_until, filters.cameras,
                                       newest_first=request.sort != "oldest", limit=request.limit,
                                       offset=request.offset, tags=filters.tags)
        return [hit(info, None) for info in infos]
    fulltext = FullText(stores.catalog)
    words = query_words(request.positive_words) if request.mode != VECTOR else []
    if request.mode == WORDS_ONLY and not fulltext.available:
        raise ConfigError("this catalog has no full-text index (it needs SQLite or PostgreSQL): use --mode vector")
    vector = None if request.mode == WORDS_ONLY or not request.terms else query_vector(request, stores,
                                                                                         _need(embedder))
    if concepts and (vector is not None or not words):
        vector = _steer(vector, concepts)
    shown = request.offset + request.limit
    cutoff = request.min_match or 0.0
    rerankable = models is not None and request.rerank_k > 0 and bool(request.positive_words)
    deepest = min(MAX_RERANK_K, request.rerank_k * MATCH_DEPTH_BATCHES) if cutoff > 0 and rerankable else 0
    depth = CANDIDATE_BLOCK * -(-max(shown, request.rerank_k, deepest) // CANDIDATE_BLOCK)
    candidates = gather(vector, words if fulltext.available else [], stores, fulltext, filters, depth)

    def matched(c: Candidate, itm: float) -> bool:
        return _match(c, itm) >= cutoff

    scored: dict[int, Scored] = {}
    if rerankable:
        reach = request.rerank_k * (MATCH_DEPTH_BATCHES if cutoff > 0 else 1)
        scored = rerank(with_infos(candidates[:reach], stores), request.positive_words, request.negative_words,
                        models, request.rerank_k, enough=shown, cutoff=cutoff, matched=matched)
    fit = _fit(candidates, concepts, stores) if concepts else None
    ranked = _rank(request, candidates, scored, words, fusion, text_weight, fit, rerankable)
    if cutoff > 0 and (rerankable or fit is not None):
        ranked = [r for r in ranked if r.match is not None and r.match >= cutoff]
    hits = [r.hit() for r in _page(ranked, shown, stores)]
    if request.sort != "relevance":  # the pictures that would be shown, by date (undated last)
        dated = sorted((h for h in hits if h.date), key=lambda h: h.date, reverse=request.sort == "newest")
        hits = dated + [h for h in hits if not h.date]
    return hits[request.offset:shown]


def _page(ranked: list[_Ranked], shown: int, stores: Stores) -> list[_Ranked]:
    """The first `shown` of `ranked` whose catalog rows can be read: one read, or a few more
    where candidates had no row (a crash's leftover points)."""
    out: list[_Ranked] = []
    start = 0
    while len(out) < shown and start < len(ranked):
        chunk = ranked[start:start + shown - len(out)]
        readable = {c.id for c in with_infos([r.candidate for r in chunk], stores)}
        out += [r for r in chunk if r.candidate.id in readable]
        start += len(chunk)
    return out


def _need(embedder: Embedder | None) -> Embedder:
    if embedder is None:
        raise ValueError("a vector or hybrid search needs an embedder")
    return embedder


def _match(c: Candidate, itm: float) -> float:
    """The probability the cutoff reads: ITM's, or certainty when the picture's own name and
    folders hold every word (a user's label beats a model's guess)."""
    return 1.0 if c.named else itm


def _concepts(request: SearchRequest, stores: Stores) -> list[Concept]:
    if not request.concepts:
        return []
    from imgsearch.stores.concepts import ConceptStore

    store = ConceptStore(stores.catalog)
    return [store.named(name) for name in dict.fromkeys(request.concepts)]


def _steer(vector: np.ndarray | None, concepts: list[Concept]) -> np.ndarray:
    """The query vector turned towards the concepts (each direction weighs as one term)."""
    total = np.sum([c.direction() for c in concepts], axis=0) + (0 if vector is None else vector)
    return (total / max(float(np.linalg.norm(total)), 1e-12)).astype(np.float32)


def _fit(candidates: list[Candidate], concepts: list[Concept], stores: Stores) -> dict[int, dict[str, float]]:
    """Each candidate's probability of being each concept, from its stored vector."""
    ids = [c.id for c in candidates]
    stored = stores.vectors.get_vectors(ids)
    have = [i for i in ids if i in stored]
    if not have:
        return {}
    matrix = np.stack([stored[i] for i in have])
    each = {c.name: c.probability(matrix) for c in concepts}
    return {i: {name: float(p[row]) for name, p in each.items()} for row, i in enumerate(have)}


@dataclass
class _Ranked:
    """A candidate's place in the answer, before its catalog row is read (only a page's are)."""

    candidate: Candidate
    itm: float | None
    score: float | None
    match: float | None
    explain: dict[str, Any] | None

    def hit(self) -> Hit:
        c = self.candidate
        return hit(c.info, c.clip, self.itm, self.score, self.match, self.explain)


def _rank(request: SearchRequest, candidates: list[Candidate], scored: dict[int, Scored], words: list[str],
          fusion: str, text_weight: float, fit: dict[int, dict[str, float]] | None = None,
          rerankable: bool = False) -> list[_Ranked]:
    """Reranked candidates first, by fused score within each batch of `rerank_k` (a deeper rerank
    for a later page only adds batches: the pages before it keep their pictures); then the rest
    in candidate order (by the concepts' probability when concepts alone are searched). With
    concepts, their joint probability (the product) is added to the score and bounds the match."""
    head: list[tuple[int, _Ranked]] = []
    tail: list[_Ranked] = []
    for position, c in enumerate(candidates):
        coverage = c.coverage(words)
        s = scored.get(c.id)
        clip = c.clip if c.clip is not None else 0.0
        concepts = None if fit is None else fit.get(c.id, {})
        # no stored vector (a crash leftover): no chance of being the concept
        likely = None if concepts is None else float(np.prod(list(concepts.values()) or [0.0]))
        if s is None:
            score = c.clip if c.clip is not None else c.text
            match = None
            if likely is not None:
                score = likely if not request.terms else (score or 0.0) + likely
                match = None if rerankable else likely
            tail.append(_Ranked(c, None, score, match, _explain(request, c, None, match, words, coverage, concepts)))
            continue
        match = _match(c, s.itm)
        score = fuse(fusion, match, clip, s.itc) - s.penalty + text_weight * coverage
        if likely is not None:
            score, match = score + likely, min(match, likely)
        r = _Ranked(c, s.itm, score, match, _explain(request, c, s, match, words, coverage, concepts))
        head.append((position // max(1, request.rerank_k), r))
    head.sort(key=lambda br: (br[0], -(br[1].score or 0.0)))
    if fit is not None and not request.terms:
        tail.sort(key=lambda r: -(r.score or 0.0))
    return [r for _, r in head] + tail


def _explain(request: SearchRequest, c: Candidate, s: Scored | None, match: float | None, words: list[str],
             coverage: float, concepts: dict[str, float] | None = None) -> dict[str, Any] | None:
    if not request.explain:
        return None
    return {
        "mode": request.mode, "clip": c.clip, "itm": s.itm if s else None, "match": match,
        "not_penalty": s.penalty if s and request.negative_words else None,
        "ranks": {"vector": c.ranks.get("vector"), "text": c.ranks.get("text")},
        "text_relevance": c.text, "words": {f: c.words.get(f, []) for f in FIELDS} if words else None,
        "words_found": coverage if words else None, "names_match": c.named,
        "reranked": s is not None, "concepts": concepts,
    }


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


def search(text: str, stores: Stores, models: Any, *, limit: int = 10, rerank_k: int = 20,
           fusion: str = "itm+clip", mode: str = "hybrid", min_match: float = 0.0,
           text_weight: float = TEXT_WEIGHT) -> list[Hit]:
    """Words only: the evaluation's and the benchmark's entry."""
    from .embed import TorchEmbedder
    from .request import Term

    request = SearchRequest((Term(TEXT, text),), limit=limit, rerank_k=rerank_k, mode=mode, min_match=min_match)
    return run(request, stores, TorchEmbedder(models), models, fusion, text_weight)
