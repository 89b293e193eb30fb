"""Vector store on a Qdrant server (or any `qdrant_client.QdrantClient`, e.g. ":memory:" in tests).

Writes use `wait=True`, so a call returns only once the server has applied the operation and
put it in its own WAL; `flush()` therefore has nothing left to do. Connection and HTTP failures
become StoreError naming the URL, because the usual cause is a server that is not running or a
wrong --qdrant-url / --qdrant-api-key.

Filters run on the server as payload filters over the indexes `ensure` creates; the server plans
them like Edge does (exact over the matching points when few pass, filtered HNSW otherwise).
An in-process `QdrantClient(":memory:")` has no payload indexes and filters by brute force, which
gives the same answers. A collection whose graphs predate the indexes is given them, then
rebuilt by the server (`_relink`); until that is done a filter that the server walks through an
old graph may return less than a full page.

A collection this store creates is laid out by its `CollectionLayout` (`qdrant_layout`: shards,
replicas, disk, quantization). One that exists keeps the layout it was made with; a quantized
one (however made) is searched through its int8 copy and rescored with the float vectors.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from imgsearch.errors import ConfigError, StoreError, StoreMismatchError
from imgsearch.stores.qdrant_layout import CollectionLayout, search_params
from imgsearch.stores.vectors import (
    BATCH,
    FLOAT_FIELDS,
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

T = TypeVar("T")
TIMEOUT_S = 30
class ServerVectorStore:
    """One collection on a Qdrant server; the client is made from `url` unless one is given."""

    def __init__(
        self,
        *,
        collection: str,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        layout: CollectionLayout | None = None,
    ) -> None:
        self._collection = collection
        self._layout = layout or CollectionLayout()
        self._params: models.SearchParams | None = None  # rescoring, for a quantized collection
        self._owns_client = client is None
        self._url = url or _describe(client)
        self._dim: int | None = None  # known once ensure() ran or the collection was found
        if client is None:
            if not url:
                raise ConfigError("A Qdrant server URL is needed, e.g. --qdrant-url http://localhost:6333.")
            try:  # no compatibility probe: it would hit the network before we can word its failure
                client = QdrantClient(url=url, api_key=api_key, timeout=TIMEOUT_S, check_compatibility=False)
            except ValueError as exc:  # urllib3's LocationParseError is a ValueError too
                raise ConfigError(f"Bad Qdrant URL {url!r}: {exc}. Use e.g. http://localhost:6333.") from exc
        self._client: QdrantClient | None = client

    # ---- VectorStore -----------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return f"Qdrant at {self._url}, collection {self._collection!r}"

    def ensure(self, dim: int) -> None:
        """Create the cosine collection if missing (laid out by the layout), else check its vector
        size and distance."""
        client = self._live()
        with self._errors():
            if not client.collection_exists(self._collection):
                client.create_collection(self._collection, **self._layout.create_options(dim))
                self._params = search_params(client.get_collection(self._collection).config)
            else:
                have, have_text = self._stored_dim(client)
                if have != dim:
                    raise StoreMismatchError(mismatch_message(self.location, have_text, dim))
            self._dim = dim
            if self._ensure_indexes(client):
                self._relink(client)

    def upsert(
        self, ids: Sequence[int], vectors: np.ndarray, payloads: Sequence[dict[str, Any]] | None = None
    ) -> None:
        client, dim = self._live(), self._known_dim()
        if dim is None:
            raise RuntimeError("ServerVectorStore.ensure(dim) must be called before upsert")
        id_list, matrix, payload_list = check_batch(ids, vectors, payloads, dim, self.location)
        for start in chunks(len(id_list)):
            stop = start + BATCH
            batch = models.Batch(
                ids=list(id_list[start:stop]),
                vectors=matrix[start:stop].tolist(),
                payloads=None if payload_list is None else payload_list[start:stop],
            )
            self._run(lambda: client.upsert(self._collection, points=batch, wait=True))

    def delete(self, ids: Sequence[int]) -> None:
        id_list = check_ids(ids)
        client = self._live()
        if not id_list or self._known_dim() is None:
            return
        for start in chunks(len(id_list)):
            selector = models.PointIdsList(points=list(id_list[start : start + BATCH]))
            self._run(lambda: client.delete(self._collection, points_selector=selector, wait=True))

    def search(
        self, vector: np.ndarray, limit: int, where: PointFilter | None = None
    ) -> list[tuple[int, float]]:
        client, dim = self._live(), self._known_dim()
        if dim is None or limit <= 0:
            return []
        query = check_query(vector, dim, self.location)
        if where is not None and where.matches_nothing():
            return []
        flt = _server_filter(where)
        response = self._run(
            lambda: client.query_points(
                self._collection, query=query, query_filter=flt, limit=limit, with_payload=False,
                search_params=self._params,
            )
        )
        return [(int(p.id), float(p.score)) for p in response.points]

    def search_many(
        self, vectors: np.ndarray, limit: int, where: PointFilter | None = None, min_score: float | None = None
    ) -> list[list[tuple[int, float]]]:
        """The server's `query_batch_points`: one request per BATCH queries."""
        client, dim = self._live(), self._known_dim()
        n = len(vectors)
        if dim is None or limit <= 0 or n == 0 or (where is not None and where.matches_nothing()):
            return [[] for _ in range(n)]
        matrix = check_queries(vectors, dim, self.location)
        flt = _server_filter(where)
        ef = max(MANY_EF, limit)
        many = self._params.model_copy(update={"hnsw_ef": ef}) if self._params else models.SearchParams(hnsw_ef=ef)
        out: list[list[tuple[int, float]]] = []
        for start in chunks(len(matrix)):
            requests = [
                models.QueryRequest(query=row.tolist(), filter=flt, limit=limit, score_threshold=min_score,
                                    with_payload=False, params=many)
                for row in matrix[start : start + BATCH]
            ]
            with warnings.catch_warnings():  # the in-process client searches exactly, beam or not
                warnings.filterwarnings("ignore", message="Local mode performs exact")
                answers = self._run(
                    lambda requests=requests: client.query_batch_points(self._collection, requests=requests))
            out += [[(int(p.id), float(p.score)) for p in answer.points] for answer in answers]
        return out

    def set_payload(self, ids: Sequence[int], payloads: Sequence[dict[str, Any]]) -> None:
        """One request per batch of per-point overwrites, for the ids found first: the server
        fails the whole batch on a missing id (so does a point deleted between the two requests)."""
        pairs = check_payloads(ids, payloads)
        client = self._live()
        if not pairs or self._known_dim() is None:
            return
        for start in chunks(len(pairs)):
            part = pairs[start : start + BATCH]
            wanted = [i for i, _ in part]
            found = self._run(
                lambda: client.retrieve(self._collection, wanted, with_payload=False, with_vectors=False)
            )
            present = {int(r.id) for r in found}
            operations = [
                models.OverwritePayloadOperation(overwrite_payload=models.SetPayload(payload=p, points=[i]))
                for i, p in part
                if i in present
            ]
            if operations:
                self._run(lambda: client.batch_update_points(self._collection, operations, wait=True))

    def payloads(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        id_list = check_ids(ids)
        client = self._live()
        if not id_list or self._known_dim() is None:
            return {}
        out: dict[int, dict[str, Any]] = {}
        for start in chunks(len(id_list)):
            part = list(id_list[start : start + BATCH])
            records = self._run(
                lambda: client.retrieve(self._collection, part, with_payload=True, with_vectors=False)
            )
            out.update((int(r.id), dict(r.payload or {})) for r in records)
        return out

    def facets(self, key: str, where: PointFilter | None = None, limit: int = 100) -> list[tuple[str, int]]:
        check_facet_key(key)
        client = self._live()
        if self._known_dim() is None or limit <= 0 or (where is not None and where.matches_nothing()):
            return []
        flt = _server_filter(where)
        response = self._run(
            lambda: client.facet(self._collection, key, facet_filter=flt, limit=limit, exact=True)
        )
        return sort_facets([(str(h.value), h.count) for h in response.hits], limit)

    def get_vectors(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        id_list = check_ids(ids)
        client = self._live()
        if not id_list or self._known_dim() is None:
            return {}
        out: dict[int, np.ndarray] = {}
        for start in chunks(len(id_list)):
            part = list(id_list[start : start + BATCH])
            records = self._run(
                lambda: client.retrieve(self._collection, part, with_payload=False, with_vectors=True)
            )
            for rec in records:
                if isinstance(rec.vector, list):
                    out[int(rec.id)] = unit(rec.vector)  # type: ignore[arg-type]
        return out

    def all_ids(self) -> set[int]:
        client = self._live()
        if self._known_dim() is None:
            return set()
        ids: set[int] = set()
        offset: Any = None
        while True:
            records, offset = self._run(
                lambda: client.scroll(
                    self._collection, limit=1000, offset=offset, with_payload=False, with_vectors=False
                )
            )
            ids.update(int(r.id) for r in records)
            if offset is None or not records:
                return ids

    def count(self) -> int:
        client = self._live()
        if self._known_dim() is None:
            return 0
        return int(self._run(lambda: client.count(self._collection, exact=True)).count)

    def flush(self) -> None:
        """Nothing to do: every write was acknowledged with wait=True (already in the server's WAL)."""
        self._live()

    def unindexed(self) -> int:
        """0: a server builds its HNSW indexes itself, in the background."""
        self._live()
        return 0

    def build_index(self) -> None:
        """Nothing to do: the server's own optimiser indexes segments as they grow."""
        self._live()

    def close(self) -> None:
        """Close the client if this store made it; a client passed in belongs to the caller."""
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            client.close()

    def __enter__(self) -> ServerVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- internals -------------------------------------------------------------------------------

    def _live(self) -> QdrantClient:
        if self._client is None:
            raise StoreError(f"The vector store ({self.location}) is closed.")
        return self._client

    def _known_dim(self) -> int | None:
        """The collection's size, looked up once; None while the collection does not exist."""
        if self._dim is None:
            client = self._live()
            with self._errors():
                if client.collection_exists(self._collection):
                    self._dim = self._stored_dim(client)[0]
        return self._dim

    def _ensure_indexes(self, client: QdrantClient) -> bool:
        """Create the payload indexes a filter needs where missing; True if any was. An index
        already there is left alone: re-creating it would make the server build it all again."""
        have = client.get_collection(self._collection).payload_schema
        wanted: list[tuple[str, models.PayloadSchemaType]] = [
            (f, models.PayloadSchemaType.KEYWORD) for f in KEYWORD_FIELDS
        ] + [(f, models.PayloadSchemaType.FLOAT) for f in FLOAT_FIELDS]
        missing = [(f, kind) for f, kind in wanted if f not in have or have[f].data_type != kind]
        for field, kind in missing:
            with warnings.catch_warnings():  # the in-process client says it has no such indexes
                warnings.filterwarnings("ignore", message="Payload indexes have no effect")
                client.create_payload_index(self._collection, field, field_schema=self._layout.index_schema(kind),
                                            wait=True)
        return bool(missing)

    def _relink(self, client: QdrantClient) -> None:
        """Indexes added to a collection that already has HNSW graphs: those graphs lack the
        links among each folder's points that make a filtered walk find a full page (see
        imgsearch.stores.edge). Spelling out payload_m (its default, m) changes the collection's
        index config, and the server's optimiser rebuilds the graphs in the background, this time
        with those links. Same mechanism as the Edge rebuild, which the tests check."""
        info = client.get_collection(self._collection)
        hnsw = info.config.hnsw_config
        if (info.indexed_vectors_count or 0) > 0 and hnsw.payload_m is None:
            diff = models.HnswConfigDiff(payload_m=hnsw.m)
            client.update_collection(self._collection, hnsw_config=diff)

    def _stored_dim(self, client: QdrantClient) -> tuple[int | None, str]:
        """(size, description) of the collection's unnamed cosine vector; size None if it has none."""
        config = client.get_collection(self._collection).config
        self._params = search_params(config)
        params = config.params.vectors
        if not isinstance(params, models.VectorParams):
            return None, "named vectors (not an imgsearch collection)"
        if params.distance != models.Distance.COSINE:
            return None, f"{params.size}-dimensional {params.distance.value} vectors"
        return params.size, f"{params.size}-dimensional vectors"

    def _run(self, fn: Callable[[], T]) -> T:
        with self._errors():
            return fn()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn transport and HTTP failures into StoreError saying what to do."""
        try:
            yield
        except ResponseHandlingException as exc:
            raise StoreError(
                f"Cannot reach the Qdrant server at {self._url} ({exc}). Start the server "
                f"(e.g. `docker run -p 6333:6333 qdrant/qdrant`) or fix --qdrant-url."
            ) from exc
        except UnexpectedResponse as exc:
            if exc.status_code in (401, 403):
                raise StoreError(
                    f"The Qdrant server at {self._url} refused access ({exc.status_code}); "
                    f"check --qdrant-api-key."
                ) from exc
            body = exc.content.decode("utf-8", "replace")[:300]
            raise StoreError(
                f"The Qdrant server at {self._url} answered {exc.status_code} {exc.reason_phrase} "
                f"for collection {self._collection!r}: {body}"
            ) from exc


def _describe(client: QdrantClient | None) -> str:
    """Where a caller-made client points, from its init options (url, path or ':memory:')."""
    if client is None:
        return "?"
    options: dict[str, Any] = getattr(client, "init_options", None) or {}
    for key in ("url", "location", "host", "path"):
        if options.get(key):
            return str(options[key])
    return "a Qdrant client"


def _server_filter(where: PointFilter | None) -> models.Filter | None:
    """The server filter for `where`; None (no filter at all) when it filters nothing."""
    if where is None or where.is_empty():
        return None
    must: list[models.Condition] = []
    if where.folders:
        must.append(models.FieldCondition(key="dirs", match=models.MatchAny(any=list(where.folders))))
    if where.cameras is not None:
        must.append(models.FieldCondition(key="camera", match=models.MatchAny(any=list(where.cameras))))
    if where.ids is not None:
        must.append(models.HasIdCondition(has_id=list(where.ids)))
    if where.date_from is not None or where.date_until is not None:
        span = models.Range(gte=where.date_from, lt=where.date_until)
        must.append(models.FieldCondition(key="date", range=span))
    return models.Filter(must=must)
