"""Contract tests for filtered search, payloads and facets: the same suite runs on the Edge shard
and on the server backend (an in-process `QdrantClient(":memory:")`), as in test_vectors.py.

The in-process client keeps no payload indexes (it filters by brute force), so the server case
runs on a client that remembers the indexes asked for and reports them the way a server's
`payload_schema` does: that is how "old stores get their indexes on open" is checked there."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe
from qdrant_client import QdrantClient, models

from imgsearch.stores.edge import EdgeVectorStore
from imgsearch.stores.vectors import PointFilter, VectorStore, open_vector_store, point_payload

Opener = Callable[[], VectorStore]
DAY = 86400.0


class IndexRecordingClient(QdrantClient):
    """An in-process client whose collections report the payload indexes created on them, and
    `graph_points` as their HNSW-indexed vectors (a server's count; the in-process one has none)."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.indexes: dict[str, models.PayloadSchemaType] = {}
        self.graph_points = 0
        self.hnsw_updates: list[models.HnswConfigDiff] = []

    def update_collection(self, collection_name: str, **kwargs: Any) -> bool:  # type: ignore[override]
        if kwargs.get("hnsw_config") is not None:
            self.hnsw_updates.append(kwargs["hnsw_config"])
        return super().update_collection(collection_name, **kwargs)

    def create_payload_index(self, collection_name: str, field_name: str, **kwargs: Any) -> Any:  # type: ignore[override]
        self.indexes[field_name] = kwargs["field_schema"]
        return super().create_payload_index(collection_name, field_name, **kwargs)

    def get_collection(self, collection_name: str, **kwargs: Any) -> models.CollectionInfo:
        info = super().get_collection(collection_name, **kwargs)
        info.payload_schema = {
            name: models.PayloadIndexInfo(data_type=kind, points=0) for name, kind in self.indexes.items()
        }
        info.indexed_vectors_count = self.graph_points
        return info


@pytest.fixture(params=["edge", "server"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def opener(backend: str, tmp_path: Path) -> Iterator[Opener]:
    """Opens (or re-opens) one store of the parametrized backend; closes everything at the end."""
    opened: list[VectorStore] = []
    client = IndexRecordingClient() if backend == "server" else None

    def open_store() -> VectorStore:
        if client is not None:
            store = open_vector_store(client=client, collection="photos")
        else:
            store = open_vector_store(path=tmp_path / "vectors", collection="photos")
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
    if client is not None:
        client.close()


def random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def filled(opener: Opener, files: list[tuple[str, float | None, str | None]], dim: int = 8) -> VectorStore:
    """A store holding one point per (path, date, camera), with ids 0..n-1."""
    store = opener()
    store.ensure(dim)
    payloads = [point_payload(p, f"sha{i}", d, c) for i, (p, d, c) in enumerate(files)]
    store.upsert(list(range(len(files))), random_vectors(len(files), dim), payloads)
    return store


def found(store: VectorStore, where: PointFilter | None, limit: int = 100) -> set[int]:
    hits = store.search(np.ones(8, np.float32), limit, where)
    return {i for i, _ in hits}


FILES: list[tuple[str, float | None, str | None]] = [
    ("/a/b/x.jpg", 10 * DAY, "Canon EOS"),  # 0
    ("/a/b/c/d.jpg", 20 * DAY, "Canon EOS R"),  # 1
    ("/a/bc/x.jpg", 30 * DAY, "Canon EOS"),  # 2
    ("/a/x.jpg", None, None),  # 3: no date, no camera
    ("/z/y.jpg", 40 * DAY, "Pixel 7"),  # 4
]


# ---- the payload and the filter object ---------------------------------------------------------


def test_point_payload_lists_every_folder_above_the_file() -> None:
    assert point_payload("/a/b/c.jpg", "h", 1.5, "Canon") == {
        "sha256": "h", "dirs": ["/a", "/a/b"], "date": 1.5, "camera": "Canon"
    }
    assert point_payload("/top.jpg", "h", None, None)["dirs"] == []


def test_point_filter_normalises_its_fields() -> None:
    assert PointFilter().is_empty() and PointFilter(folders=["/"]).is_empty()  # type: ignore[arg-type]
    assert PointFilter(folders=["/a/b/"]).folders == ("/a/b",)  # type: ignore[arg-type]
    assert not PointFilter(cameras=()).is_empty() and PointFilter(cameras=()).matches_nothing()
    assert PointFilter(date_from=5, date_until=5).matches_nothing()
    assert not PointFilter(date_from=5).matches_nothing()


# ---- contract: both backends -------------------------------------------------------------------


def test_no_filter_and_empty_filter_search_everything(opener: Opener) -> None:
    store = filled(opener, FILES)
    assert store.search(np.ones(8, np.float32), 5) == store.search(np.ones(8, np.float32), 5, PointFilter())
    assert found(store, None) == {0, 1, 2, 3, 4}


def test_folder_filter_matches_whole_subtrees_only(opener: Opener) -> None:
    store = filled(opener, FILES)
    assert found(store, PointFilter(folders=("/a/b",))) == {0, 1}  # not /a/bc, not /a itself
    assert found(store, PointFilter(folders=("/a/b/",))) == {0, 1}
    assert found(store, PointFilter(folders=("/a/b/c",))) == {1}
    assert found(store, PointFilter(folders=("/a",))) == {0, 1, 2, 3}
    assert found(store, PointFilter(folders=("/a/bc", "/z"))) == {2, 4}  # any of them
    assert found(store, PointFilter(folders=("/a/b/x.jpg",))) == set()  # a file is not a folder
    assert found(store, PointFilter(folders=("/",))) == {0, 1, 2, 3, 4}


def test_date_range_is_inclusive_from_and_exclusive_until(opener: Opener) -> None:
    store = filled(opener, FILES)
    assert found(store, PointFilter(date_from=20 * DAY, date_until=40 * DAY)) == {1, 2}
    assert found(store, PointFilter(date_from=20 * DAY)) == {1, 2, 4}  # never 3, which has no date
    assert found(store, PointFilter(date_until=20 * DAY)) == {0}
    assert found(store, PointFilter(date_from=30 * DAY, date_until=30 * DAY)) == set()
    assert found(store, PointFilter(date_from=30 * DAY - 0.5, date_until=30 * DAY + 0.5)) == {2}


def test_camera_filter_takes_exact_keys(opener: Opener) -> None:
    store = filled(opener, FILES)
    assert found(store, PointFilter(cameras=("Canon EOS",))) == {0, 2}  # not "Canon EOS R"
    assert found(store, PointFilter(cameras=("Canon EOS R", "Pixel 7"))) == {1, 4}
    assert found(store, PointFilter(cameras=("canon eos",))) == set()
    assert found(store, PointFilter(cameras=())) == set()


def test_fields_combine_with_and(opener: Opener) -> None:
    store = filled(opener, FILES)
    assert found(store, PointFilter(folders=("/a",), cameras=("Canon EOS",))) == {0, 2}
    assert found(store, PointFilter(folders=("/a",), cameras=("Canon EOS",), date_from=15 * DAY)) == {2}
    assert found(store, PointFilter(folders=("/a/b",), date_from=15 * DAY, date_until=25 * DAY)) == {1}
    assert found(store, PointFilter(folders=("/z",), cameras=("Canon EOS",))) == set()


def test_restrictive_filter_still_fills_the_page_with_the_true_nearest(opener: Opener) -> None:
    """1 % of 5,000 points pass: the page is full, and it is exactly the 20 nearest of those."""
    store = opener()
    store.ensure(64)
    vectors = random_vectors(5000, 64, seed=7)
    in_x = set(np.random.default_rng(8).choice(5000, size=50, replace=False).tolist())
    payloads = [
        point_payload(f"/x/{i}.jpg" if i in in_x else f"/y/{i % 40}/{i}.jpg", str(i), float(i), None)
        for i in range(5000)
    ]
    store.upsert(list(range(5000)), vectors, payloads)
    query = random_vectors(1, 64, seed=9)[0]

    hits = store.search(query, 20, PointFilter(folders=("/x",)))

    ids = np.array(sorted(in_x))
    unit = vectors[ids] / np.linalg.norm(vectors[ids], axis=1, keepdims=True)
    sims = unit @ (query / np.linalg.norm(query))
    best = np.argsort(-sims)[:20]
    assert [i for i, _ in hits] == ids[best].tolist()
    np.testing.assert_allclose([s for _, s in hits], sims[best], atol=1e-5)
    assert len(store.search(query, 100, PointFilter(folders=("/x",)))) == 50  # all there are


def test_set_payload_moves_a_point_between_folders(opener: Opener) -> None:
    store = filled(opener, FILES)
    before = store.get_vectors([0])[0]
    store.set_payload([0, 999], [point_payload("/z/moved.jpg", "sha0", 10 * DAY, "Canon EOS"), {}])

    assert found(store, PointFilter(folders=("/a/b",))) == {1}
    assert found(store, PointFilter(folders=("/z",))) == {0, 4}
    assert store.payloads([0, 999]) == {0: point_payload("/z/moved.jpg", "sha0", 10 * DAY, "Canon EOS")}
    np.testing.assert_array_equal(store.get_vectors([0])[0], before)  # the vector is untouched
    assert store.count() == 5

    store.set_payload([3], [{"sha256": "sha3"}])  # the whole payload is replaced
    assert store.payloads([3]) == {3: {"sha256": "sha3"}}
    assert found(store, PointFilter(folders=("/a",))) == {1, 2}
    store.set_payload([], [])
    with pytest.raises(ValueError, match="payloads for"):
        store.set_payload([1, 2], [{}])


def test_payloads_by_id_skip_missing(opener: Opener) -> None:
    store = opener()
    assert store.payloads([1]) == {}  # no store yet
    store = filled(opener, FILES)
    got = store.payloads([4, 77])
    assert set(got) == {4}
    assert got[4]["dirs"] == ["/z"] and got[4]["camera"] == "Pixel 7" and got[4]["sha256"] == "sha4"


def test_facets_count_values_most_common_first(opener: Opener) -> None:
    store = filled(opener, FILES)
    assert store.facets("camera") == [("Canon EOS", 2), ("Canon EOS R", 1), ("Pixel 7", 1)]
    assert store.facets("dirs") == [("/a", 4), ("/a/b", 2), ("/a/b/c", 1), ("/a/bc", 1), ("/z", 1)]
    assert store.facets("dirs", limit=2) == [("/a", 4), ("/a/b", 2)]
    assert store.facets("camera", PointFilter(folders=("/a/b",))) == [("Canon EOS", 1), ("Canon EOS R", 1)]
    assert store.facets("camera", PointFilter(date_from=25 * DAY)) == [("Canon EOS", 1), ("Pixel 7", 1)]
    assert store.facets("camera", PointFilter(cameras=())) == []
    with pytest.raises(ValueError, match="facets exist for"):
        store.facets("sha256")


def test_an_old_store_gets_its_indexes_and_payloads_on_open(
    opener: Opener, backend: str, tmp_path: Path
) -> None:
    """A store made before filters (no payload index, points with only a sha256): `ensure` on open
    adds the indexes, and a backfill through set_payload makes its points filterable."""
    vectors = random_vectors(3, 8)
    if backend == "edge":
        config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=8, distance=qe.Distance.Cosine))
        shard = qe.EdgeShard.create(str(tmp_path / "vectors"), config)
        shard.update(qe.UpdateOperation.upsert_points(
            [qe.Point(i, vectors[i].tolist(), {"sha256": f"sha{i}"}) for i in range(3)]
        ))
        shard.close()
    else:
        store = opener()
        client: Any = store._client  # type: ignore[attr-defined]
        params = models.VectorParams(size=8, distance=models.Distance.COSINE)
        client.create_collection("photos", vectors_config=params)
        old = [{"sha256": f"sha{i}"} for i in range(3)]
        client.upsert("photos", models.Batch(ids=[0, 1, 2], vectors=vectors.tolist(), payloads=old))
        assert client.indexes == {}

    store = opener()
    store.ensure(8)
    store.set_payload([0, 1, 2], [point_payload(f"/p/{i}/f.jpg", f"sha{i}", None, None) for i in range(3)])
    assert found(store, PointFilter(folders=("/p/1",))) == {1}
    store.close()

    want = {"dirs": "keyword", "camera": "keyword", "date": "float"}
    assert indexed_fields(opener, backend, tmp_path) == want


def indexed_fields(opener: Opener, backend: str, tmp_path: Path) -> dict[str, str]:
    """The payload indexes the store holds, read with the engine's own API after closing it."""
    if backend == "edge":
        shard = qe.EdgeShard.load(str(tmp_path / "vectors"))
        try:
            schema = shard.info().payload_schema
            return {k: str(v.data_type).rsplit(".", 1)[-1].lower() for k, v in schema.items()}
        finally:
            shard.close()
    store = opener()
    client: Any = store._client  # type: ignore[attr-defined]
    return {k: str(v.data_type.value) for k, v in client.get_collection("photos").payload_schema.items()}


def test_ensure_twice_keeps_indexes_and_filters(opener: Opener) -> None:
    store = filled(opener, FILES)
    store.ensure(8)
    store.close()
    again = opener()
    again.ensure(8)
    assert found(again, PointFilter(folders=("/a/b",), cameras=("Canon EOS R",))) == {1}


# ---- server only ---------------------------------------------------------------------------------


def test_server_collection_with_graphs_older_than_the_indexes_is_rebuilt() -> None:
    """Indexes added to a collection with HNSW graphs: ensure() spells out payload_m, which makes
    the server rebuild them with links per folder; a new or graph-less collection is left as is."""
    client = IndexRecordingClient()
    params = models.VectorParams(size=8, distance=models.Distance.COSINE)
    client.create_collection("old", vectors_config=params)
    client.graph_points = 5000
    with open_vector_store(client=client, collection="old") as store:
        store.ensure(8)
    assert [u.payload_m for u in client.hnsw_updates] == [16]
    with open_vector_store(client=client, collection="old") as store:
        store.ensure(8)  # indexes there: nothing more to do
    client.indexes.clear()
    client.graph_points = 0  # what a server reports for a collection it has just made
    with open_vector_store(client=client, collection="new") as store:
        store.ensure(8)
    assert len(client.hnsw_updates) == 1
    client.close()


# ---- Edge only -----------------------------------------------------------------------------------


def test_edge_filters_survive_reopen_and_index_build(tmp_path: Path) -> None:
    payloads = [point_payload(p, f"sha{i}", d, c) for i, (p, d, c) in enumerate(FILES)]
    with EdgeVectorStore(tmp_path) as store:
        store.ensure(8)
        store.upsert(list(range(len(FILES))), random_vectors(len(FILES), 8), payloads)
        store.set_payload([4], [point_payload("/a/b/moved.jpg", "sha4", 40 * DAY, "Pixel 7")])
    with EdgeVectorStore(tmp_path) as store:  # ensure() is not even needed to filter
        assert found(store, PointFilter(folders=("/a/b",))) == {0, 1, 4}
        assert store.facets("camera", PointFilter(date_from=15 * DAY)) == [
            ("Canon EOS", 1), ("Canon EOS R", 1), ("Pixel 7", 1)
        ]
        store.build_index()
        assert found(store, PointFilter(folders=("/a/b",), date_from=15 * DAY)) == {1, 4}


def small_hnsw_shard(path: Path, dim: int) -> None:
    """An empty shard that builds HNSW at a few thousand points and walks the graph for any
    filter past 32 points: a 1 % folder of 20,000 points then takes the path that a 1 % folder
    of a million 512-d photos takes with Edge's defaults."""
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=4),  # KB
        optimizers=qe.EdgeOptimizersConfig(indexing_threshold=100),  # KB
    )
    qe.EdgeShard.create(str(path), config).close()


def folder_pages(store: VectorStore, vectors: np.ndarray, in_x: set[int]) -> float:
    """Mean recall@20 of searches in /x against numpy; every page must be full and inside /x."""
    ids = np.array(sorted(in_x))
    unit = vectors[ids] / np.linalg.norm(vectors[ids], axis=1, keepdims=True)
    recalls = []
    for query in random_vectors(20, vectors.shape[1], seed=12):
        hits = store.search(query, 20, PointFilter(folders=("/x",)))
        assert len(hits) == 20 and all(i in in_x for i, _ in hits)
        true = set(ids[np.argsort(-(unit @ query))[:20]].tolist())
        recalls.append(len(true & {i for i, _ in hits}) / 20)
    return float(np.mean(recalls))


def folder_points(n: int) -> tuple[np.ndarray, set[int], list[dict[str, Any]]]:
    """n random 32-d vectors, 1 % of them in /x."""
    in_x = set(np.random.default_rng(10).choice(n, size=n // 100, replace=False).tolist())
    paths = [f"/x/{i}.jpg" if i in in_x else f"/y/{i}.jpg" for i in range(n)]
    payloads = [point_payload(path, str(i), None, None) for i, path in enumerate(paths)]
    return random_vectors(n, 32, seed=11), in_x, payloads


def test_edge_filtered_search_through_the_hnsw_graph_fills_the_page(tmp_path: Path) -> None:
    """Indexes made before the graph: optimize() links each folder's points among themselves."""
    small_hnsw_shard(tmp_path, 32)
    vectors, in_x, payloads = folder_points(20_000)
    with EdgeVectorStore(tmp_path) as store:
        store.ensure(32)
        store.upsert(list(range(len(vectors))), vectors, payloads)
        store.build_index()
        assert store.unindexed() == 0
        assert folder_pages(store, vectors, in_x) > 0.9


def test_edge_graph_older_than_the_indexes_is_searched_with_acorn_then_rebuilt(tmp_path: Path) -> None:
    """A shard whose graph was built before filters existed has no links inside /x: walked as
    is, it returned 0-2 of 20 hits. Opening it marks it; filtered searches use ACORN until the
    indexer's next build_index rebuilds the graph (unindexed() counts every point till then)."""
    small_hnsw_shard(tmp_path, 32)
    vectors, in_x, payloads = folder_points(20_000)
    shard = qe.EdgeShard.load(str(tmp_path))
    for start in range(0, len(vectors), 1000):
        points = [qe.Point(i, vectors[i].tolist(), payloads[i]) for i in range(start, start + 1000)]
        shard.update(qe.UpdateOperation.upsert_points(points))
    shard.optimize()
    shard.close()

    with EdgeVectorStore(tmp_path) as store:
        store.ensure(32)
        assert store.unindexed() == 20_000
        assert folder_pages(store, vectors, in_x) > 0.9
    with EdgeVectorStore(tmp_path) as store:  # the mark outlives a reopen
        assert store.unindexed() == 20_000
        store.build_index()
        assert store.unindexed() == 0
        assert folder_pages(store, vectors, in_x) > 0.9
    with EdgeVectorStore(tmp_path) as store:
        store.ensure(32)
        assert store.unindexed() == 0
        assert folder_pages(store, vectors, in_x) > 0.9
