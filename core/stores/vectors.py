"""The vector store interface shared by the embedded (Qdrant Edge) and server (Qdrant) backends.

It is deliberately tiny: the indexer and the searcher only need to put CLIP vectors under the
catalog's integer ids, find the nearest ones, and reconcile ids after a crash. Keeping Qdrant's
own API out of the rest of the code lets either backend be swapped in with one flag.

Conventions both backends honour (the contract tests in tests/stores check them):

* Distance is cosine; `search` scores are cosine similarities in [-1, 1], best first.
* Qdrant normalises vectors on insert for cosine, so `get_vectors` returns the *L2-normalised*
  vector (float32, zero vectors stay zero), never the raw one that was upserted.
* Ids are the catalog's non-negative ints below 2**63; upserting an id again replaces the point.
* Every point carries `point_payload(...)`: its file's sha256, the folders above it (`dirs`), its
  date and camera. `ensure` indexes `dirs`, `camera` (keyword) and `date` (float), so a
  `PointFilter` runs inside the engine, before ranking: a filter that 1 % of the points pass still
  fills the page, instead of the 1 % of a page that filtering the hits afterwards would leave.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
from imgsearch.errors import ConfigError, StoreMismatchError

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from imgsearch.stores.qdrant_layout import CollectionLayout

MAX_ID = 2**63  # exclusive; the catalog's ids are SQLite INTEGERs, Qdrant accepts u64
BATCH = 512  # points per request: keeps server requests and Edge WAL records small

# The payload fields a PointFilter reads and the index each one gets. Keyword indexes serve both
# matching and facet counts; `date` is a float (epoch seconds) so ranges are half-open.
KEYWORD_FIELDS = ("dirs", "camera")
FLOAT_FIELDS = ("date",)
# Qdrant scores a filter's points one by one, from its index, when they hold fewer vectors than
# this (KB; 20k 512-d points), and walks the HNSW graph otherwise. 4x Qdrant's default: on 200k
# random 512-d points a 10k-point folder (what 1 % of a million is) took 12.8 ms through the
# graph, 4.4 ms scored exactly, 5.9 ms unfiltered (Edge, 2 busy cores).
FULL_SCAN_KB = 40_000
# The HNSW beam of `search_many` (its neighbours are near ones: a duplicate's copies lie far inside
# any beam). On 20,000 CLIP-like points with 2 % planted copies (cosine >= 0.85, 9 nearest), Edge
# found 400 of 400 planted pairs at 256 (the searches' beam) in 62.6 s, at 64 in 21.0 s, and 399 at
# 32 in 10.5 s (2 busy cores).
MANY_EF = 64


@dataclass(frozen=True)
class PointFilter:
    """Which points a search may return; fields AND together, an empty/None field does not filter.

    * `folders`: any of these folder subtrees, as absolute paths; a point matches when one of them
      is among its `dirs`. A trailing slash is dropped, and "/" (every point) drops the condition.
    * `date_from` / `date_until`: epoch seconds, from inclusive, until exclusive.
    * `cameras`: exact camera keys; None means no camera filter, () matches nothing.
    * `ids`: only these points (what the catalog resolved, e.g. the pictures with a tag); None
      means any point, () none.

    A point lacking a field (no date, no camera) never passes a filter on that field.
    """

    folders: tuple[str, ...] = ()
    date_from: float | None = None
    date_until: float | None = None
    cameras: tuple[str, ...] | None = None
    ids: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        folders = tuple(str(f).rstrip("/") or "/" for f in self.folders)
        object.__setattr__(self, "folders", () if "/" in folders else folders)
        if self.cameras is not None:
            object.__setattr__(self, "cameras", tuple(str(c) for c in self.cameras))
        if self.ids is not None:
            object.__setattr__(self, "ids", tuple(int(i) for i in self.ids))
        for name in ("date_from", "date_until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, float(value))

    def is_empty(self) -> bool:
        """True when nothing is filtered (a search may skip the filter altogether)."""
        dates = (self.date_from, self.date_until)
        return not self.folders and dates == (None, None) and self.cameras is None and self.ids is None

    def matches_nothing(self) -> bool:
        """True when no point can pass, so a backend can answer without asking the engine."""
        if self.cameras == () or self.ids == ():
            return True
        start, until = self.date_from, self.date_until
        return start is not None and until is not None and start >= until


def point_payload(path: str, sha256: str, date: float | None, camera: str | None) -> dict[str, Any]:
    """The payload every point carries: `dirs` lists each folder above `path` from the top
    ("/a", "/a/b" for "/a/b/c.jpg", never "/"), so a folder filter is one keyword match."""
    parents = PurePosixPath(path).parents
    dirs = [str(d) for d in reversed(parents) if str(d) not in ("/", ".")]
    return {"sha256": sha256, "dirs": dirs, "date": None if date is None else float(date), "camera": camera}


@runtime_checkable
class VectorStore(Protocol):
    """What the indexer and searcher may ask of a vector store."""

    def ensure(self, dim: int) -> None:
        """Create the collection/shard if missing; raise StoreMismatchError if it holds another size.
        Also create any missing payload index (KEYWORD_FIELDS, FLOAT_FIELDS), so a store made
        before filters existed gets them when it is next opened; existing ones are left alone."""
        ...

    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]] | None = None
    ) -> None:
        """Insert or replace one point per id (vectors: float32, shape (n, dim))."""
        ...

    def delete(self, ids: Sequence[int]) -> None:
        """Remove these ids; ids that are not there are ignored."""
        ...

    def search(
        self, vector: np.ndarray, limit: int, where: PointFilter | None = None
    ) -> list[tuple[int, float]]:
        """The `limit` nearest ids with their cosine similarity, best first, among the points
        `where` lets through (None or an empty filter: all). The filter runs in the engine, so
        the answer has min(limit, points that pass) hits however few points pass."""
        ...

    def search_many(
        self, vectors: np.ndarray, limit: int, where: PointFilter | None = None, min_score: float | None = None
    ) -> list[list[tuple[int, float]]]:
        """For each row of `vectors` (n, dim), what `search` answers, less the hits scoring below
        `min_score`: one planned batch per BATCH queries (the duplicate finder asks for the
        neighbours of every picture). An HNSW graph is searched with a narrower beam than
        `search`'s (MANY_EF): exact for near neighbours, approximate further out. An empty store or
        filter gives n empty lists."""
        ...

    def set_payload(self, ids: Sequence[int], payloads: Sequence[dict[str, Any]]) -> None:
        """Replace each point's whole payload (a moved file's new `dirs`, a backfill of old
        points); vectors stay as they are, ids not in the store are ignored. The HNSW graph is
        not rebuilt: it links a folder's points only if they had that folder when it was built,
        so backfill a whole store before its next `build_index`, not after."""
        ...

    def payloads(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Stored payloads by id; missing ids are simply absent."""
        ...

    def facets(self, key: str, where: PointFilter | None = None, limit: int = 100) -> list[tuple[str, int]]:
        """Exact counts of the values of a keyword field ("dirs" or "camera", else ValueError) among
        the points `where` lets through: at most `limit`, most common first, ties by value."""
        ...

    def get_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored (L2-normalised) vectors by id; missing ids are simply absent."""
        ...

    def all_ids(self) -> set[int]:
        """Every id in the store (scrolls through all of it; used to repair after a crash)."""
        ...

    def count(self) -> int:
        """Exact number of points."""
        ...

    def flush(self) -> None:
        """Make everything written so far durable."""
        ...

    def unindexed(self) -> int:
        """How many points a search still compares one by one (outside any HNSW index), or
        every point while the index predates the payload indexes and `build_index` must redo it."""
        ...

    def build_index(self) -> None:
        """Build the HNSW index over those points, where the backend leaves that to its caller."""
        ...

    def close(self) -> None:
        """Release files, locks and connections; safe to call twice."""
        ...

    @property
    def location(self) -> str:
        """Human-readable "where the vectors live", for `imgsearch status`."""
        ...


def open_vector_store(
    *,
    path: Path | None = None,
    url: str | None = None,
    api_key: str | None = None,
    collection: str,
    client: QdrantClient | None = None,
    layout: CollectionLayout | None = None,
) -> VectorStore:
    """Open the server backend when `url` (or a ready `client`) is given, else the Edge shard at `path`.
    `layout`: how the server backend lays out a collection it creates (shards, replicas, disk,
    quantization); the Edge shard has none of these.

    The Edge shard lives directly in `path` (created if missing); `collection` only names the
    server-side collection. Backends are imported lazily so Edge users never pay for qdrant_client.
    """
    if url is not None or client is not None:
        from imgsearch.stores.qdrant_server import ServerVectorStore

        return ServerVectorStore(collection=collection, url=url, api_key=api_key, client=client, layout=layout)
    if path is not None:
        from imgsearch.stores.edge import EdgeVectorStore

        return EdgeVectorStore(Path(path))
    raise ConfigError("No vector store configured: give a data directory or --qdrant-url.")


# ---- helpers shared by the backends -------------------------------------------------------------


def mismatch_message(where: str, have: str, want: int) -> str:
    """The StoreMismatchError text: what is wrong and the two ways out."""
    return (
        f"The vector store at {where} holds {have}, but the current model makes {want}-dimensional "
        f"cosine vectors. Use the model the index was built with, or remove that store (or pick "
        f"another collection / data directory) and index again."
    )


def check_ids(ids: Sequence[int]) -> list[int]:
    """Plain Python ints in [0, 2**63): numpy ints and bools would confuse the Qdrant bindings."""
    out = [int(i) for i in ids]
    for i in out:
        if not 0 <= i < MAX_ID:
            raise ValueError(f"point id {i} is outside [0, 2**63)")
    return out


def check_batch(
    ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]] | None, dim: int, where: str
) -> tuple[list[int], np.ndarray, list[dict[str, Any]] | None]:
    """Validate an upsert batch up front so both backends fail the same way, before writing."""
    id_list = check_ids(ids)
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim != 2 or matrix.shape[0] != len(id_list):
        raise ValueError(f"expected vectors of shape ({len(id_list)}, {dim}), got {matrix.shape}")
    if matrix.shape[1] != dim:
        raise StoreMismatchError(mismatch_message(where, f"{dim}-dimensional vectors", matrix.shape[1]))
    if not np.isfinite(matrix).all():
        raise ValueError("vectors contain NaN or infinity")
    payload_list = None if payloads is None else [dict(p) for p in payloads]
    if payload_list is not None and len(payload_list) != len(id_list):
        raise ValueError(f"{len(payload_list)} payloads for {len(id_list)} ids")
    if len(set(id_list)) != len(id_list):  # the last occurrence wins, as a second upsert would
        last = {i: row for row, i in enumerate(id_list)}
        rows = sorted(last.values())
        id_list = [id_list[r] for r in rows]
        matrix = matrix[rows]
        payload_list = None if payload_list is None else [payload_list[r] for r in rows]
    return id_list, matrix, payload_list


def check_query(vector: np.ndarray, dim: int, where: str) -> list[float]:
    """Accept (dim,) or (1, dim); a wrong size means the index belongs to another model."""
    flat = np.asarray(vector, dtype=np.float32).reshape(-1)
    if flat.shape[0] != dim:
        raise StoreMismatchError(mismatch_message(where, f"{dim}-dimensional vectors", flat.shape[0]))
    return flat.tolist()


def check_queries(vectors: np.ndarray, dim: int, where: str) -> np.ndarray:
    """A (n, dim) float32 matrix of finite queries; a wrong size means another model's index."""
    matrix = np.asarray(vectors, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix.reshape(1, -1)
    if matrix.ndim != 2:
        raise ValueError(f"expected queries of shape (n, {dim}), got {matrix.shape}")
    if matrix.shape[1] != dim:
        raise StoreMismatchError(mismatch_message(where, f"{dim}-dimensional vectors", matrix.shape[1]))
    if not np.isfinite(matrix).all():
        raise ValueError("queries contain NaN or infinity")
    return matrix


def check_payloads(
    ids: Sequence[int], payloads: Sequence[dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """(id, payload) pairs for set_payload, validated like an upsert batch; the last one per id wins."""
    id_list = check_ids(ids)
    payload_list = [dict(p) for p in payloads]
    if len(payload_list) != len(id_list):
        raise ValueError(f"{len(payload_list)} payloads for {len(id_list)} ids")
    return list(dict(zip(id_list, payload_list)).items())


def check_facet_key(key: str) -> None:
    """Only keyword-indexed fields can be counted by both backends (Edge needs the index)."""
    if key not in KEYWORD_FIELDS:
        raise ValueError(f"cannot count values of {key!r}; facets exist for {', '.join(KEYWORD_FIELDS)}")


def sort_facets(hits: Sequence[tuple[str, int]], limit: int) -> list[tuple[str, int]]:
    """Most common first, ties by value: the engines order ties each their own way."""
    return sorted(((str(v), int(n)) for v, n in hits), key=lambda h: (-h[1], h[0]))[:limit]


def unit(values: Sequence[float]) -> np.ndarray:
    """float32 L2-normalised copy (zero stays zero): makes get_vectors identical across backends."""
    arr = np.asarray(values, dtype=np.float32)
    norm = float(np.linalg.norm(arr))
    return arr / norm if norm > 0 else arr


def chunks(n: int, size: int = BATCH) -> range:
    """Start offsets for slicing n items into requests of at most `size`."""
    return range(0, n, size)
