"""BLIP ITM over the best candidates: a match probability for each, for the words a user typed.

With a cutoff (`min_match`) the rerank goes deeper by itself: after the first `rerank_k`
candidates it scores the next `rerank_k` while the last batch still held a match and the page
is not yet full of matches, up to `MATCH_DEPTH_BATCHES` batches and within a budget of work:
`DEPTH_BUDGET` times the first batch's, where a picture whose vision states must be computed
costs 1 and one in the rerank cache `CACHED_COST` (measured in bench/: a warm rerank costs ~1/8
of a cold one). So a cold query costs at most about twice today's rerank, and a library indexed
with `--precompute-rerank` (or searched before) lets the cutoff go ten batches deep. A picture
never scored has no probability: below that depth nothing passes the cutoff."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .candidates import Candidate

MATCH_DEPTH_BATCHES = 10
DEPTH_BUDGET = 2.0
CACHED_COST = 1 / 8


@dataclass(frozen=True)
class Scored:
    itm: float  # match probability of the positive words
    itc: float  # BLIP's own image-text cosine (a fusion variant uses it)
    penalty: float  # the highest probability of a `--not` phrase


def rerank(candidates: list[Candidate], positive: list[str], negative: list[str], models: Any, rerank_k: int,
           enough: int = 0, cutoff: float = 0.0, matched: Any = None) -> dict[int, Scored]:
    """ITM scores by file id for the first `rerank_k` candidates, or (with `cutoff` > 0) as many
    batches of them as keep finding matches until `enough` have been found. `matched(candidate,
    itm)` says whether a scored candidate counts as a match (the name rule may make it one).
    Unreadable pictures get no score."""
    from imgsearch.vision_states import open_state_cache

    itm = models.itm
    cache = open_state_cache(models.settings, itm)
    batches = MATCH_DEPTH_BATCHES if cutoff > 0 else 1
    scored: dict[int, Scored] = {}
    found, spent = 0, 0.0
    for start in range(0, min(len(candidates), rerank_k * batches), rerank_k):
        batch = candidates[start:start + rerank_k]
        cost = sum(CACHED_COST if c.info.sha256 and cache.has(c.info.sha256) else 1.0 for c in batch)
        if start > 0 and spent + cost > DEPTH_BUDGET * rerank_k:
            break
        spent += cost
        new = _score(batch, positive, negative, itm, cache, models.settings.decode_workers)
        scored.update(new)
        if cutoff <= 0:
            break
        hits = sum(1 for c in batch if c.id in new and matched(c, new[c.id].itm))
        found += hits
        if hits == 0 or found >= enough:
            break
    return scored


def _score(batch: list[Candidate], positive: list[str], negative: list[str], itm: Any, cache: Any,
           workers: int) -> dict[int, Scored]:
    import torch

    from imgsearch.vision_states import vision_states

    states = vision_states([c.info for c in batch], itm, cache, workers)
    readable = [c for c in batch if c.id in states]
    if not readable:
        return {}
    stacked = torch.stack([states[c.id] for c in readable])
    match, itc = itm.score(" and ".join(positive), stacked)
    penalty = [0.0] * len(readable)
    for phrase in negative:
        against, _ = itm.score(phrase, stacked)
        penalty = [max(p, a) for p, a in zip(penalty, against)]
    return {c.id: Scored(m, t, p) for c, m, t, p in zip(readable, match, itc, penalty)}
