"""What a benchmark run measures: the full plan of the issue, or the smoke plan that only
proves, in seconds, that every section of the harness works end to end."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from .photos import PhotoSet

TINY = "tiny"  # the bundled models
BASE = "default-random"  # the `default` profile's architectures, randomly initialised


# Sections a run may skip. Without indexing there is no index to query, so the queries are not run either.
SECTIONS = ("indexing", "queries", "vectors", "ocr", "tags")
OWN_VOCABULARY = "own"  # a tag configuration's vocabulary: the profile's own
DEFAULT_VOCABULARY = "default"  # the default profile's (~285 classes), whatever the profile


@dataclass(frozen=True)
class PhasePlan:
    """The text (OCR) and tag phases: sizes of their pictures and how often each is timed."""

    ocr_pictures: int  # pictures with text, and as many without (and as many shapes), per kind
    ocr_seed: int
    tag_configs: tuple[tuple[str, str], ...]  # (profile, OWN_VOCABULARY or DEFAULT_VOCABULARY)
    tag_pictures: int  # shapes pictures indexed for the whole tag phase
    tag_vectors: int = 1000  # random vectors per tag() call
    tag_calls: int = 5  # timed tag() calls, and timed phases, per run (median)
    shapes_seed: int = 31


@dataclass(frozen=True)
class QueryPlan:
    """How many timed calls each query measurement makes per run (per warm process)."""

    text_encodes: int
    searches: int  # vector store searches alone
    plain_queries: int  # whole queries without rerank, each in vector and in hybrid mode (interleaved)
    cold_queries: int  # texts queried on a cold rerank cache: as today's rerank of K, and with the cutoff
    warm_repeats: int  # timed reruns of each cold rerank-of-K query, now with a warm cache
    deepest_queries: int = 1  # cold-cache cutoff queries made to take the deepest path (`queries.ItmProbe`)
    rerank_k: int = 20
    limit: int = 10
    min_match: float | None = None  # the cutoff rows' cutoff; None: the product's (Settings.min_match)


@dataclass(frozen=True)
class Plan:
    mode: str
    runs: int  # independent repetitions of every measured configuration
    profiles: tuple[str, ...]
    photo_sets: tuple[PhotoSet, ...]
    query_set: str  # which photo set the query index is built from
    queries: QueryPlan
    cli_runs: int
    cli_warmup: bool  # one untimed CLI call first (byte-code and page cache warm, as for a user)
    vector_sizes: tuple[int, ...]
    client_max: int  # qdrant-client local mode keeps everything in Python: up to this size only
    optimize_max: int  # Edge + HNSW build: ~1 ms a 512-d point on 2 cores, so 1M points take tens of minutes
    phases: PhasePlan | None = None
    vector_queries: int = 100
    vector_dim: int = 512
    vector_kind: str = "uniform"  # bench.vectors.KINDS
    photo_workers: int = 0  # 0: one per CPU
    child_timeout_s: float | None = None
    isolated: bool = True  # a fresh process per measured configuration (False: one shared worker)
    index_runs: int | None = None  # indexing runs per configuration (None: `runs`); queries still make `runs`
    skip: tuple[str, ...] = ()  # sections left out of this run (SECTIONS), e.g. to rerun the others on a quiet CPU
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def full_plan(runs: int = 3) -> Plan:
    return Plan(
        mode="full",
        runs=max(3, runs),
        profiles=(TINY, BASE),
        photo_sets=(PhotoSet("1mp", 1152, 864, 300), PhotoSet("12mp", 4000, 3000, 300)),
        query_set="1mp",
        queries=QueryPlan(text_encodes=50, searches=100, plain_queries=50, cold_queries=10, warm_repeats=3),
        cli_runs=5,
        cli_warmup=True,
        vector_sizes=(10_000, 100_000, 1_000_000),
        client_max=100_000,
        optimize_max=1_000_000,  # the product builds HNSW past 100,000 unindexed points: the 1M target is on it
        phases=PhasePlan(ocr_pictures=40, ocr_seed=1616,
                         tag_configs=((TINY, OWN_VOCABULARY), (BASE, OWN_VOCABULARY)), tag_pictures=1000),
    )


def smoke_plan(runs: int = 1) -> Plan:
    return Plan(
        mode="smoke",
        runs=max(1, min(2, runs)),
        profiles=(TINY,),
        photo_sets=(PhotoSet("smoke", 320, 240, 20),),
        query_set="smoke",
        queries=QueryPlan(text_encodes=5, searches=10, plain_queries=5, cold_queries=2, warm_repeats=2),
        cli_runs=1,
        cli_warmup=False,
        vector_sizes=(200, 1_000),
        client_max=200,  # qdrant-client commits every point: ~15 ms each on a slow disk
        optimize_max=1_000,
        # the default vocabulary with the tiny CLIP: proves a ~285-class vocabulary loads and tags
        phases=PhasePlan(ocr_pictures=3, ocr_seed=1616, tag_configs=((TINY, OWN_VOCABULARY),
                         (TINY, DEFAULT_VOCABULARY)), tag_pictures=30, tag_vectors=200, tag_calls=2),
        photo_workers=1,
        child_timeout_s=300,
        isolated=False,
        notes=["smoke mode: tiny models and tiny sizes only, one shared worker process instead of a fresh "
               "process per configuration (so RSS figures are that worker's peak so far); proves the harness "
               "works, measures nothing the issue's targets are about; qdrant-client only at 200 points (it "
               "commits each point to SQLite, seconds per thousand)"],
    )
