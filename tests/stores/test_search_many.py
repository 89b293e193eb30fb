"""Contract of `search_many` on both backends: each row answers what `search` answers for it,
less the hits under `min_score`, with filters, across request batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from imgsearch.errors import StoreMismatchError
from imgsearch.stores.vectors import BATCH, PointFilter, VectorStore, open_vector_store, point_payload
from qdrant_client import QdrantClient


@pytest.fixture(params=["edge", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    client = QdrantClient(":memory:") if request.param == "server" else None
    if client is not None:
        opened = open_vector_store(client=client, collection="photos")
    else:
        opened = open_vector_store(path=tmp_path / "vectors", collection="photos")
    yield opened
    opened.close()
    if client is not None:
        client.close()


def _fill(store: VectorStore, n: int, dim: int = 16) -> np.ndarray:
    store.ensure(dim)
    vectors = np.random.default_rng(3).normal(size=(n, dim)).astype(np.float32)
    payloads = [point_payload(f"/p/{'a' if i % 2 else 'b'}/{i}.jpg", f"{i:064x}", None, None) for i in range(n)]
    store.upsert(range(n), vectors, payloads)
    return vectors


def test_each_row_answers_as_search_does(store: VectorStore) -> None:
    vectors = _fill(store, 40)
    many = store.search_many(vectors[:7], 5)
    assert len(many) == 7
    for row, hits in zip(vectors[:7], many):
        single = store.search(row, 5)
        assert [i for i, _ in hits] == [i for i, _ in single]
        np.testing.assert_allclose([s for _, s in hits], [s for _, s in single], atol=1e-5)


def test_min_score_and_filter_cut_the_answers(store: VectorStore) -> None:
    vectors = _fill(store, 40)
    many = store.search_many(vectors[:5], 10, min_score=0.5)
    for k, hits in enumerate(many):
        assert hits[0][0] == k  # itself, at cosine 1
        assert all(s >= 0.5 for _, s in hits)
    odd = store.search_many(vectors[:4], 10, PointFilter(folders=("/p/a",)))
    assert all(i % 2 == 1 for hits in odd for i, _ in hits)
    assert all(len(hits) == 10 for hits in odd)


def test_more_queries_than_one_batch(store: VectorStore) -> None:
    vectors = _fill(store, BATCH + 9)
    many = store.search_many(vectors, 1)
    assert [hits[0][0] for hits in many] == list(range(BATCH + 9))


def test_empty_store_nothing_to_match_and_wrong_size(store: VectorStore) -> None:
    assert store.search_many(np.ones((3, 16), np.float32), 5) == [[], [], []]
    _fill(store, 10)
    assert store.search_many(np.ones((2, 16), np.float32), 5, PointFilter(cameras=())) == [[], []]
    assert store.search_many(np.ones((2, 16), np.float32), 0) == [[], []]
    with pytest.raises(StoreMismatchError):
        store.search_many(np.ones((2, 8), np.float32), 5)
