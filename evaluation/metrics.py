"""Retrieval metrics, pure functions over ranked lists of picture names.

MRR rewards putting the one right picture first, which is what a relation query against its hard
negatives is about; P@5 says how much of a first screen is right. Both are computed within the
ranked list the searcher returned: a relevant picture beyond it counts as not found."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str]) -> float:
    """1/rank of the first relevant item (rank 1 = first), 0.0 when none is in `ranked`."""
    for rank, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def precision_at(ranked: Sequence[str], relevant: Collection[str], k: int = 5) -> float:
    """Share of the first `k` places holding a relevant item; places the list leaves empty
    count as misses, so a short list cannot score higher than a full one."""
    if k <= 0:
        raise ValueError("k must be positive")
    return sum(1 for item in ranked[:k] if item in relevant) / k


def precision_ceiling(relevant: Collection[str], k: int = 5) -> float:
    """The best P@k any ranking can reach: a query with one relevant picture tops out at 1/k."""
    return min(len(relevant), k) / k


@dataclass(frozen=True)
class Judged:
    """One query's outcome: its kind, what the searcher returned (best first), what is right."""

    kind: str
    ranked: tuple[str, ...]
    relevant: frozenset[str]


@dataclass(frozen=True)
class KindScores:
    queries: int
    mrr: float
    p5: float
    p5_ceiling: float  # mean best-possible P@5 for these queries

    def as_dict(self) -> dict[str, float | int]:
        return {"queries": self.queries, "mrr": self.mrr, "p5": self.p5, "p5_ceiling": self.p5_ceiling}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def summarise(judged: Iterable[Judged], k: int = 5) -> dict[str, KindScores]:
    """Mean MRR and P@k per query kind (sorted), then "all" over every query."""
    groups: dict[str, list[Judged]] = {}
    for j in judged:
        groups.setdefault(j.kind, []).append(j)
        groups.setdefault("all", []).append(j)
    out: dict[str, KindScores] = {}
    for kind in sorted(groups, key=lambda name: (name == "all", name)):
        js = groups[kind]
        out[kind] = KindScores(
            len(js),
            _mean([reciprocal_rank(j.ranked, j.relevant) for j in js]),
            _mean([precision_at(j.ranked, j.relevant, k) for j in js]),
            _mean([precision_ceiling(j.relevant, k) for j in js]),
        )
    return out
