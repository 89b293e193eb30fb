"""Contract tests for the vector stores: the same suite runs on the Edge shard and on the server
backend (through an in-process `QdrantClient(":memory:")`), then Edge-only tests cover what the
embedded store promises on its own: persistence, the single-process lock and kill -9 durability."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from imgsearch.errors import ConfigError, StoreError, StoreLockedError, StoreMismatchError
from imgsearch.stores.edge import EdgeVectorStore
from imgsearch.stores.qdrant_server import ServerVectorStore
from imgsearch.stores.vectors import VectorStore, open_vector_store

Opener = Callable[[], VectorStore]


def unit_rows(m: np.ndarray) -> np.ndarray:
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.fixture(params=["edge", "server"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens (or re-opens) one store of the parametrized backend; closes everything at the end."""
    opened: list[VectorStore] = []
    client = QdrantClient(":memory:") if request.param == "server" else None

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


# ---- contract: both backends -----------------------------------------------------------------------


def test_backend_selection_and_protocol(opener: Opener) -> None:
    store = opener()
    assert isinstance(store, VectorStore)
    assert isinstance(store, (EdgeVectorStore, ServerVectorStore))
    assert store.location


def test_missing_store_reads_as_empty(opener: Opener) -> None:
    store = opener()
    assert store.count() == 0
    assert store.all_ids() == set()
    assert store.search(np.ones(4, np.float32), 5) == []
    assert store.get_vectors([1, 2]) == {}
    store.delete([1])  # nothing to delete is fine


def test_search_order_and_scores_match_numpy_cosine(opener: Opener) -> None:
    store = opener()
    store.ensure(16)
    vectors = random_vectors(60, 16)
    ids = [0, 2**63 - 1] + [1000 + 7 * k for k in range(58)]
    store.upsert(ids, vectors, [{"path": f"/p/{i}.jpg"} for i in ids])
    query = np.random.default_rng(1).normal(size=16).astype(np.float32) * 3.0  # not unit length

    hits = store.search(query, 10)

    sims = unit_rows(vectors.astype(np.float64)) @ (query / np.linalg.norm(query))
    best = np.argsort(-sims)[:10]
    assert [i for i, _ in hits] == [ids[k] for k in best]
    np.testing.assert_allclose([s for _, s in hits], sims[best], atol=1e-5)
    assert all(isinstance(i, int) and isinstance(s, float) for i, s in hits)
    again = store.search(query.reshape(1, 16), 3)  # (1, dim) is accepted too
    assert [i for i, _ in again] == [i for i, _ in hits[:3]]


def test_reupsert_replaces_instead_of_adding(opener: Opener) -> None:
    store = opener()
    store.ensure(4)
    store.upsert([1, 2], np.array([[1, 0, 0, 0], [0, 1, 0, 0]], np.float32))
    store.upsert([1], np.array([[0, 0, 3, 4]], np.float32))
    assert store.count() == 2
    np.testing.assert_allclose(store.get_vectors([1])[1], [0, 0, 0.6, 0.8], atol=1e-6)
    assert store.search(np.array([0, 0, 0, 1], np.float32), 1)[0][0] == 1

    store.upsert([3, 3], np.array([[1, 1, 0, 0], [0, 0, 0, 2]], np.float32))  # last one wins
    assert store.count() == 3
    np.testing.assert_allclose(store.get_vectors([3])[3], [0, 0, 0, 1], atol=1e-6)


def test_delete_removes_points_and_ignores_missing_ids(opener: Opener) -> None:
    store = opener()
    store.ensure(4)
    store.upsert([10, 11, 12], np.eye(4, dtype=np.float32)[:3])
    store.delete([11, 999])
    assert store.count() == 2
    assert store.all_ids() == {10, 12}
    assert 11 not in store.get_vectors([10, 11, 12])
    assert 11 not in [i for i, _ in store.search(np.array([0, 1, 0, 0], np.float32), 5)]
    store.delete([])


def test_get_vectors_are_unit_float32_and_skip_missing(opener: Opener) -> None:
    store = opener()
    store.ensure(8)
    vectors = random_vectors(5, 8, seed=3) * 5
    store.upsert([5, 6, 7, 8, 9], vectors)
    got = store.get_vectors([np.int64(6), 9, 12345])  # numpy ints are accepted
    assert set(got) == {6, 9}
    for i, row in ((6, 1), (9, 4)):
        assert got[i].dtype == np.float32 and got[i].shape == (8,)
        np.testing.assert_allclose(got[i], vectors[row] / np.linalg.norm(vectors[row]), atol=1e-6)


def test_all_ids_and_count_page_through_everything(opener: Opener) -> None:
    store = opener()
    store.ensure(4)
    ids = list(range(0, 5000, 2))  # 2500 points: more than two scroll pages and upsert batches
    store.upsert(ids, random_vectors(len(ids), 4, seed=4))
    assert store.count() == 2500
    assert store.all_ids() == set(ids)


def test_dimension_mismatch_raises_with_advice(opener: Opener) -> None:
    store = opener()
    store.ensure(8)
    store.upsert([1], random_vectors(1, 8))
    store.ensure(8)  # same size again: fine, data kept
    assert store.count() == 1
    with pytest.raises(StoreMismatchError, match="8-dimensional.*16-dimensional"):
        store.upsert([2], random_vectors(1, 16))
    with pytest.raises(StoreMismatchError):
        store.search(np.ones(16, np.float32), 3)
    store.close()

    again = opener()
    with pytest.raises(StoreMismatchError, match="index again") as info:
        again.ensure(16)
    assert info.value.exit_code == 4
    assert again.count() == 1  # refusing touched nothing


def test_bad_input_is_rejected_before_writing(opener: Opener) -> None:
    store = opener()
    store.ensure(4)
    with pytest.raises(ValueError, match="outside"):
        store.upsert([-1], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="outside"):
        store.upsert([2**63], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="shape"):
        store.upsert([1, 2], np.ones((1, 4), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        store.upsert([1], np.full((1, 4), np.nan, np.float32))
    assert store.count() == 0


def test_closed_store_refuses_work(opener: Opener) -> None:
    store = opener()
    store.ensure(4)
    store.flush()
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.count()


# ---- Edge only -------------------------------------------------------------------------------------


def test_edge_persists_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "vectors"  # missing parents are created
    vectors = random_vectors(20, 12, seed=5)
    with EdgeVectorStore(path) as store:
        store.ensure(12)
        store.upsert(list(range(20)), vectors)
        store.delete([3])
        expected = store.search(vectors[0], 5)
    with EdgeVectorStore(path) as store:
        assert store.count() == 19 and 3 not in store.all_ids()
        assert store.search(vectors[0], 5) == expected
        store.ensure(12)
        np.testing.assert_allclose(store.get_vectors([7])[7], unit_rows(vectors)[7], atol=1e-6)
        assert str(path) in store.location


def test_edge_second_opener_in_same_process_is_locked_out(tmp_path: Path) -> None:
    with EdgeVectorStore(tmp_path) as store:
        store.ensure(4)
        with pytest.raises(StoreLockedError, match="in use by another imgsearch process"):
            EdgeVectorStore(tmp_path)


CHILD_PRELUDE = """
import os, sys, numpy as np
from pathlib import Path
from imgsearch.stores.vectors import open_vector_store
path = Path(sys.argv[1])
store = open_vector_store(path=path, collection="photos")
store.ensure(8)
"""


def start_child(body: str, *args: str) -> subprocess.Popen[str]:
    """A fresh interpreter running the prelude + body; it prints 'ready' once it has done its work."""
    code = CHILD_PRELUDE + textwrap.dedent(body)
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.strip() == "ready", f"child failed (rc={child.poll()})"
    return child


def test_edge_lock_held_by_another_process(tmp_path: Path) -> None:
    child = start_child("print('ready', flush=True); sys.stdin.readline(); store.close()\n", str(tmp_path))
    try:
        with pytest.raises(StoreLockedError, match=str(tmp_path)):
            EdgeVectorStore(tmp_path)
    finally:
        child.communicate("go\n", timeout=60)
    assert child.returncode == 0
    with EdgeVectorStore(tmp_path) as store:  # released once the holder closed
        store.ensure(8)


@pytest.mark.parametrize("flush", [True, False], ids=["flushed", "wal-only"])
def test_edge_data_survives_sigkill(tmp_path: Path, flush: bool) -> None:
    """flush() is the promise; the WAL-only case pins down that Edge also replays un-flushed updates."""
    vectors = random_vectors(300, 8, seed=6)
    np.save(tmp_path / "v.npy", vectors)
    store_path = tmp_path / "vectors"
    body = """
    v = np.load(path.parent / "v.npy")
    store.upsert(list(range(300)), v, [{"n": i} for i in range(300)])
    store.delete([0, 1])
    if sys.argv[2] == "1":
        store.flush()
    print("ready", flush=True)
    sys.stdin.readline()  # never answered: the parent kills us here
    """
    child = start_child(body, str(store_path), "1" if flush else "0")
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL

    with EdgeVectorStore(store_path) as store:
        assert store.count() == 298
        assert store.all_ids() == set(range(2, 300))
        np.testing.assert_allclose(store.get_vectors([42])[42], unit_rows(vectors)[42], atol=1e-6)
        store.ensure(8)


# ---- server only and the factory ---------------------------------------------------------------


def test_server_unreachable_names_url_and_fix() -> None:
    store = ServerVectorStore(collection="photos", url="http://127.0.0.1:1")
    try:
        with pytest.raises(StoreError, match=r"http://127\.0\.0\.1:1.*--qdrant-url"):
            store.ensure(4)
    finally:
        store.close()


def test_server_malformed_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="Bad Qdrant URL"):
        open_vector_store(url="ftp://example", collection="photos")


def test_factory_needs_path_or_url() -> None:
    with pytest.raises(ConfigError):
        open_vector_store(collection="photos")
