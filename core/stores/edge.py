"""Embedded vector store: one Qdrant Edge shard in a local directory, no server to run.

Durability (checked by tests/stores/test_vectors.py with SIGKILL, qdrant-edge-py 0.9.0):

* Edge keeps a write-ahead log (`<dir>/wal/`, on by default and left on here). Every
  `update()` is in the WAL when it returns, and the next `EdgeShard.load` replays it, so points
  upserted or deleted *without* `flush()` survive a `kill -9` of the process. With
  `wal_enabled=False` the same test loses them all, so it is the WAL that does it.
* `flush()` writes the segments themselves to disk. It is the documented durability point
  ("Without a WAL, updates are durable only once flush() returns") and the one to rely on for
  machine crashes / power loss, which the kill test cannot show for un-flushed WAL records.

Locking: Edge takes an exclusive, non-blocking lock on the WAL when a shard is opened and the
kernel drops it when the holder exits (even by SIGKILL). A second opener, in another process
or the same one, gets "failed to open WAL ...: Kind(WouldBlock)"; it is raised here as
StoreLockedError. The lock is per open shard, so one process must not open a directory twice.

The vector size is read back from Edge's own persisted `edge_config.json` (the shard has no
API for its config) to report a model/size mismatch before any write.

Filters: `ensure` creates the payload indexes (WAL operations like any update, persisted with
the shard). Edge plans a filtered query from them: when fewer points pass than the full-scan
threshold (HNSW below) it scores exactly those points, otherwise it walks the HNSW graph through
the points that pass. That walk only finds a full page if the graph links the passing points to
each other: `optimize()` adds such links for every folder, date block... from the threshold up
to 1/8 of the segment, but only for indexes that exist when it builds the graph. So a new shard
gets its indexes before any point, and a shard whose graph predates them (made before filters)
is marked (GRAPH_MARKER): its filtered searches use ACORN (it also visits neighbours'
neighbours: full pages, but 20-30x slower on 200k points) until `build_index` has rebuilt the
graph. Without either, a 1 % folder of 20,000 points walked through an old graph returned 0-2
of 20 hits (tests/stores/test_filters.py).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from imgsearch.errors import StoreError, StoreLockedError, StoreMismatchError
from imgsearch.stores.vectors import (
    BATCH,
    FLOAT_FIELDS,
    FULL_SCAN_KB,
    KEYWORD_FIELDS,
    MANY_EF,
    PointFilter,
    check_batch,
    check_facet_key,
    check_ids,
    check_payloads,
    check_queries,
    check_query,
    chunks,
    mismatch_message,
    sort_facets,
    unit,
)

# Candidates an HNSW search keeps (Qdrant's `ef`). On 50k CLIP-like 512-d vectors (a shared cone,
# 2,000 topics) recall@20 was 0.994 at 128 and 0.997 at 256 (2.2 ms). Random unit vectors, HNSW's
# worst case and not what CLIP makes, fare far worse: 0.89 at 256 on 24k 128-d, 0.24 on 100k 512-d.
SEARCH_EF = 256
CONFIG_FILE = "edge_config.json"  # written by Edge itself on create; holds {"vectors": {"": {...}}}
# Edge's HNSW parameters (but FULL_SCAN_KB), with payload_m (links per point among those of one
# folder...) spelled out at its default (m). A shard made before filters has no payload_m in its
# config: loading it with one changes its recorded index config, and that is what makes Edge's
# optimiser rebuild its graphs, now with the payload links (_reload_for_rebuild keeps its other
# parameters, FULL_SCAN_KB included: such a shard keeps Edge's 10,000 KB).
HNSW = {"m": 16, "ef_construct": 100, "full_scan_threshold": FULL_SCAN_KB, "payload_m": 16}
GRAPH_MARKER = "imgsearch-graph-predates-filters"  # ours, beside Edge's files: see the docstring


class EdgeVectorStore:
    """A Qdrant Edge shard in `path`; opened (and locked) on construction if it already exists."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path).expanduser().absolute()
        self._shard: qe.EdgeShard | None = None
        self._dim: int | None = None  # None with a shard open: not a plain cosine shard
        self._have = "nothing"  # what the shard holds, for mismatch messages
        self._closed = False
        self._graph_stale = (self._path / GRAPH_MARKER).exists()
        try:
            self._path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the vector store folder {self._path}: {exc}.") from exc
        if self._shard_exists():
            self._shard = self._open(lambda: qe.EdgeShard.load(str(self._path)))
            self._dim, self._have = self._stored_dim()

    # ---- VectorStore -----------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return f"{self._path} (embedded Qdrant Edge)"

    def ensure(self, dim: int) -> None:
        """Create the shard for `dim`-sized cosine vectors (payload indexes first, before any
        point), or check the existing one matches and add the indexes it lacks, marking its graph
        as one to rebuild if it already has one."""
        self._check_open()
        shard = self._shard
        if shard is not None:
            if self._dim != dim:
                raise StoreMismatchError(mismatch_message(str(self._path), self._have, dim))
        else:
            shard = self._open(lambda: qe.EdgeShard.create(str(self._path), _config(dim)))
            self._shard, self._dim = shard, dim
        if self._ensure_indexes(shard) and self._call(shard.info).indexed_vectors_count > 0:
            (self._path / GRAPH_MARKER).touch()
            self._graph_stale = True

    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]] | None = None
    ) -> None:
        shard = self._writable()
        assert self._dim is not None
        id_list, matrix, payload_list = check_batch(ids, vectors, payloads, self._dim, str(self._path))
        for start in chunks(len(id_list)):
            points = [
                qe.Point(id_list[k], matrix[k].tolist(), None if payload_list is None else payload_list[k])
                for k in range(start, min(start + BATCH, len(id_list)))
            ]
            self._call(lambda: shard.update(qe.UpdateOperation.upsert_points(points)))

    def delete(self, ids: Sequence[int]) -> None:
        id_list = check_ids(ids)
        if self._readable() is None or not id_list:
            return
        shard = self._shard
        assert shard is not None
        for start in chunks(len(id_list)):
            part: list[Any] = list(id_list[start : start + BATCH])
            self._call(lambda: shard.update(qe.UpdateOperation.delete_points(part)))

    def search(
        self, vector: np.ndarray, limit: int, where: PointFilter | None = None
    ) -> list[tuple[int, float]]:
        shard = self._readable()
        if shard is None or limit <= 0:
            return []
        assert self._dim is not None
        flat = check_query(vector, self._dim, str(self._path))
        if where is not None and where.matches_nothing():
            return []
        query = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(flat),
            filter=_edge_filter(where),
            params=self._search_params(limit, where),
            with_payload=False,
            with_vector=False,
        )
        hits = self._call(lambda: shard.query(query))
        return [(int(h.id), float(h.score)) for h in hits]

    def search_many(
        self, vectors: np.ndarray, limit: int, where: PointFilter | None = None, min_score: float | None = None
    ) -> list[list[tuple[int, float]]]:
        """Edge's `query_batch`: one planned pass over the segments per BATCH queries."""
        shard = self._readable()
        n = len(vectors)
        if shard is None or limit <= 0 or n == 0 or (where is not None and where.matches_nothing()):
            return [[] for _ in range(n)]
        assert self._dim is not None
        matrix = check_queries(vectors, self._dim, str(self._path))
        flt, params = _edge_filter(where), self._search_params(limit, where, MANY_EF)
        out: list[list[tuple[int, float]]] = []
        for start in chunks(len(matrix)):
            requests = [
                qe.QueryRequest(limit=limit, query=qe.Query.Nearest(row.tolist()), filter=flt, params=params,
                                score_threshold=min_score, with_payload=False, with_vector=False)
                for row in matrix[start : start + BATCH]
            ]
            batch = qe.QueryBatchRequest(requests)
            answers = self._call(lambda batch=batch: shard.query_batch(batch))
            out += [[(int(h.id), float(h.score)) for h in hits] for hits in answers]
        return out

    def set_payload(self, ids: Sequence[int], payloads: Sequence[dict[str, Any]]) -> None:
        """One overwrite per point (Edge sets one payload on a list of ids), only for ids that
        exist: Edge refuses the whole operation if one id is missing."""
        pairs = check_payloads(ids, payloads)
        shard = self._readable()
        if shard is None or not pairs:
            return
        for start in chunks(len(pairs)):
            part = pairs[start : start + BATCH]
            wanted: list[Any] = [i for i, _ in part]
            present = {int(r.id) for r in self._call(lambda: shard.retrieve(wanted, False, False))}
            for i, payload in part:
                if i in present:
                    self._call(lambda: shard.update(qe.UpdateOperation.overwrite_payload([i], payload)))

    def payloads(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        id_list = check_ids(ids)
        shard = self._readable()
        if shard is None or not id_list:
            return {}
        out: dict[int, dict[str, Any]] = {}
        for start in chunks(len(id_list)):
            part: list[Any] = list(id_list[start : start + BATCH])
            for rec in self._call(lambda: shard.retrieve(part, True, False)):
                out[int(rec.id)] = dict(rec.payload or {})
        return out

    def facets(self, key: str, where: PointFilter | None = None, limit: int = 100) -> list[tuple[str, int]]:
        check_facet_key(key)
        shard = self._readable()
        if shard is None or limit <= 0 or (where is not None and where.matches_nothing()):
            return []
        request = qe.FacetRequest(key, limit=limit, exact=True, filter=_edge_filter(where))
        response = self._call(lambda: shard.facet(request))
        return sort_facets([(h.value, h.count) for h in response.hits], limit)

    def get_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        id_list = check_ids(ids)
        shard = self._readable()
        if shard is None or not id_list:
            return {}
        out: dict[int, np.ndarray] = {}
        for start in chunks(len(id_list)):
            part: list[Any] = list(id_list[start : start + BATCH])
            for rec in self._call(lambda: shard.retrieve(part, False, True)):
                if isinstance(rec.vector, list):
                    out[int(rec.id)] = unit(rec.vector)
        return out

    def all_ids(self) -> set[int]:
        shard = self._readable()
        if shard is None:
            return set()
        ids: set[int] = set()
        offset: Any = None
        while True:
            request = qe.ScrollRequest(offset=offset, limit=1000, with_payload=False, with_vector=False)
            records, offset = self._call(lambda: shard.scroll(request))
            ids.update(int(r.id) for r in records)
            if offset is None or not records:
                return ids

    def count(self) -> int:
        shard = self._readable()
        if shard is None:
            return 0
        return int(self._call(lambda: shard.count(qe.CountRequest(exact=True))))

    def flush(self) -> None:
        shard = self._readable()
        if shard is not None:
            self._call(shard.flush)

    def unindexed(self) -> int:
        """Points outside any HNSW graph, or all of them while the graph predates the payload
        indexes: the indexer's usual "build past N unindexed points" then rebuilds it."""
        shard = self._readable()
        if shard is None:
            return 0
        info = self._call(shard.info)
        if self._graph_stale:
            return int(info.points_count)
        return max(0, int(info.points_count) - int(info.indexed_vectors_count))

    def build_index(self) -> None:
        """Edge never optimises by itself: searches stay brute force (linear in the points)
        until this runs its segment optimiser, which builds HNSW over every segment above Edge's
        indexing threshold (10 MB of vectors). It blocks, holding the GIL, for 0.5–1 ms per 512-d
        point on this 2-core CPU; a kill meanwhile loses nothing (Edge builds new
        segments beside the old ones and swaps them in: tests/stores/test_search_index.py)."""
        shard = self._readable()
        if shard is None:
            return
        if self._graph_stale:
            shard = self._reload_for_rebuild()
        rebuilt = self._call(shard.optimize)
        self._call(shard.flush)
        if self._graph_stale and rebuilt:
            (self._path / GRAPH_MARKER).unlink(missing_ok=True)
            self._graph_stale = False

    def close(self) -> None:
        """Flush and release the WAL lock; later calls raise StoreError."""
        shard, self._shard, self._closed = self._shard, None, True
        if shard is not None:
            try:
                shard.flush()
            finally:
                shard.close()

    def __enter__(self) -> EdgeVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -------------------------------------------------------------------------------

    def _ensure_indexes(self, shard: qe.EdgeShard) -> bool:
        """Create the payload indexes a filter needs where missing (or of another type); True if
        any was. Indexing is a pass over every point, so an index already there is left alone."""
        have = {name: info.data_type for name, info in self._call(shard.info).payload_schema.items()}
        wanted = [(f, qe.PayloadSchemaType.Keyword) for f in KEYWORD_FIELDS]
        wanted += [(f, qe.PayloadSchemaType.Float) for f in FLOAT_FIELDS]
        missing = [(field, kind) for field, kind in wanted if have.get(field) != kind]
        for field, kind in missing:
            self._call(lambda: shard.update(qe.UpdateOperation.create_field_index(field, kind)))
        return bool(missing)

    def _search_params(self, limit: int, where: PointFilter | None, ef: int = SEARCH_EF) -> qe.SearchParams:
        """ACORN only where the graph lacks payload links: it costs 20x on a graph that has them."""
        ef = max(ef, limit)
        if self._graph_stale and where is not None and not where.is_empty():
            return qe.SearchParams(hnsw_ef=ef, acorn=qe.AcornSearchParams(enable=True))
        return qe.SearchParams(hnsw_ef=ef)

    def _reload_for_rebuild(self) -> qe.EdgeShard:
        """Reopen the shard with HNSW's config spelled out, so that optimize() rebuilds graphs
        made under the old one. The lock is let go for that moment: another process taking it
        then gets the shard, and this one a StoreLockedError."""
        assert self._shard is not None and self._dim is not None
        try:
            stored = json.loads((self._path / CONFIG_FILE).read_text()).get("hnsw_config") or {}
        except (OSError, ValueError):
            stored = {}
        hnsw = {key: int(stored.get(key, default)) for key, default in HNSW.items()}
        if "payload_m" not in stored:  # else nothing to change: the marker stays, so does ACORN
            hnsw["payload_m"] = hnsw["m"]
        config = _config(self._dim, hnsw)
        shard, self._shard = self._shard, None
        shard.flush()
        shard.close()
        self._shard = self._open(lambda: qe.EdgeShard.load(str(self._path), config))
        return self._shard

    def _shard_exists(self) -> bool:
        """Edge writes its config on create; a non-empty segments/ alone also counts as a shard."""
        segments = self._path / "segments"
        return (self._path / CONFIG_FILE).exists() or (segments.is_dir() and any(segments.iterdir()))

    def _stored_dim(self) -> tuple[int | None, str]:
        """(size, description) of the default dense vector per Edge's config file; size None if the
        shard is not a plain cosine one (another distance, only named vectors...)."""
        try:
            config = json.loads((self._path / CONFIG_FILE).read_text())
        except (OSError, ValueError):
            return self._probe_dim()
        params = config.get("vectors", {}).get("") if isinstance(config, dict) else None
        if not isinstance(params, dict) or "size" not in params:
            return None, "no default dense vector (not an imgsearch store)"
        size, distance = int(params["size"]), str(params.get("distance", "?"))
        if distance.lower() != "cosine":
            return None, f"{size}-dimensional {distance} vectors"
        return size, f"{size}-dimensional vectors"

    def _probe_dim(self) -> tuple[int | None, str]:
        """Fallback when the config file is unreadable: the length of any stored vector."""
        shard = self._shard
        assert shard is not None
        records, _ = self._call(lambda: shard.scroll(qe.ScrollRequest(limit=1, with_vector=True)))
        if records and isinstance(records[0].vector, list):
            return len(records[0].vector), f"{len(records[0].vector)}-dimensional vectors"
        return None, "vectors of an unknown size"

    def _open(self, opener: Any) -> qe.EdgeShard:
        try:
            return opener()
        except Exception as exc:  # Edge raises bare Exception with a Rust error string
            if "WouldBlock" in str(exc):
                raise StoreLockedError(
                    f"The vector store at {self._path} is in use by another imgsearch process "
                    f"(an indexer or watcher?). Wait for it to finish or stop it, then try again."
                ) from exc
            raise StoreError(f"Cannot open the vector store at {self._path}: {exc}") from exc

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:
            raise StoreError(f"Vector store at {self._path} failed: {exc}") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The vector store at {self._path} is closed.")

    def _readable(self) -> qe.EdgeShard | None:
        """The open shard, or None if ensure() never created one (an empty store)."""
        self._check_open()
        return self._shard

    def _writable(self) -> qe.EdgeShard:
        shard = self._readable()
        if shard is None:
            raise RuntimeError("EdgeVectorStore.ensure(dim) must be called before upsert")
        return shard


def _config(dim: int, hnsw: dict[str, int] = HNSW) -> qe.EdgeConfig:
    """The config of an imgsearch shard: cosine vectors of `dim`, HNSW as described at HNSW."""
    vectors = qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine)
    graph = qe.HnswIndexConfig(
        m=hnsw["m"],
        ef_construct=hnsw["ef_construct"],
        full_scan_threshold=hnsw["full_scan_threshold"],
        payload_m=hnsw["payload_m"],
    )
    return qe.EdgeConfig(vectors=vectors, hnsw_config=graph)


def _edge_filter(where: PointFilter | None) -> qe.Filter | None:
    """The Edge filter for `where`; None (no filter at all) when it filters nothing."""
    if where is None or where.is_empty():
        return None
    must: list[Any] = []
    if where.folders:
        must.append(qe.FieldCondition(key="dirs", match=qe.MatchAny(any=list(where.folders))))
    if where.cameras is not None:
        must.append(qe.FieldCondition(key="camera", match=qe.MatchAny(any=list(where.cameras))))
    if where.ids is not None:
        must.append(qe.HasIdCondition(set(where.ids)))
    if where.date_from is not None or where.date_until is not None:
        span = qe.RangeFloat(gte=where.date_from, lt=where.date_until)
        must.append(qe.FieldCondition(key="date", range=span))
    return qe.Filter(must=must)
