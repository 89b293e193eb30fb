"""The vector-store bench's CLIP-like points: what recall is measured on must look like photo
embeddings (one cone, topics), be unit length, and be the same world for stores and queries."""

from __future__ import annotations

import numpy as np

from bench.vectors import unit_vectors


def test_clip_like_vectors_share_a_cone_and_cluster_by_topic() -> None:
    _, points = next(unit_vectors(3000, 512, seed=1, kind="clip-like"))
    _, queries = next(unit_vectors(50, 512, seed=2, kind="clip-like"))
    assert np.allclose(np.linalg.norm(points, axis=1), 1, atol=1e-5)
    cos = points @ points.T
    off_diagonal = (cos.sum() - len(points)) / (len(points) * (len(points) - 1))
    assert 0.3 < off_diagonal < 0.45  # uniform random 512-d vectors: ~0
    assert np.sort(cos, axis=1)[:, -2].mean() > 0.65  # a nearest neighbour of the same topic
    assert np.median((queries @ points.T).max(axis=1)) > 0.6  # most queries find their topic among 3,000 points
    _, uniform = next(unit_vectors(3000, 512, seed=1))
    assert abs(float((uniform @ uniform.T).mean()) - 1 / 3000) < 0.01


def test_vectors_are_seeded() -> None:
    first = np.concatenate([c for _, c in unit_vectors(25_000, 16, seed=4, kind="clip-like")])
    again = np.concatenate([c for _, c in unit_vectors(25_000, 16, seed=4, kind="clip-like")])
    other = next(unit_vectors(25_000, 16, seed=5, kind="clip-like"))[1]
    assert first.shape == (25_000, 16) and np.array_equal(first, again)
    assert not np.array_equal(first[:len(other)], other)
