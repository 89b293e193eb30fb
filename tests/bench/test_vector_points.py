"""The vector-store bench's CLIP-like points: what recall is measured on must look like photo
embeddings (one cone, topics), be unit length, and be the same world for stores and queries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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


# ---- filtered search: payloads, filters, rows, target ---------------------------------------------

def test_payloads_give_each_filter_its_share_and_folders_unequal_sizes() -> None:
    from bench.vectors import FOLDERS, filter_masks, payload_columns

    columns = payload_columns(200_000)
    shares = {k: float(m.mean()) for k, m in filter_masks(columns).items()}
    assert abs(shares["folder"] - 0.01) < 0.002 and abs(shares["date"] - 0.5) < 0.01
    assert abs(shares["camera"] - 0.10) < 0.005
    sizes = np.bincount(columns["folder"], minlength=FOLDERS) / 200_000
    assert len(sizes) == FOLDERS and sizes.max() > 0.15 and sizes.min() < 0.005
    again = payload_columns(200_000)
    assert all(np.array_equal(columns[k], again[k]) for k in columns)


def test_product_filters_pass_exactly_the_masked_points(tmp_path: Path) -> None:
    """The payloads the bench writes, searched with the product's PointFilter, return exactly the
    points its numpy masks say pass: what the recall reference is computed from."""
    from bench.vectors import COLLECTION, build_task, filter_masks, payload_columns, point_filters
    from imgsearch.stores.vectors import open_vector_store

    n = 3000
    build = build_task({"backend": "edge", "path": str(tmp_path / "s"), "n": n, "dim": 16, "seed": 1,
                        "kind": "clip-like"})
    assert build["payload_s"] > 0
    masks = filter_masks(payload_columns(n))
    query = np.ones(16, dtype=np.float32)
    with open_vector_store(path=tmp_path / "s", collection=COLLECTION) as store:
        store.ensure(16)
        for name, where in point_filters().items():
            got = {i for i, _ in store.search(query, n, where)}
            assert got == set(np.flatnonzero(masks[name]).tolist()), name


class _InProcess:
    """A Runner that calls the tasks directly (the harness's processes are not what is tested)."""

    isolated = False

    def run(self, task: str, args: dict[str, Any]) -> dict[str, Any]:
        from bench.vectors import build_task, open_task

        return {"peak_rss_mb": 1.0, **(build_task if task == "vec-build" else open_task)(dict(args))}

    def close(self) -> None:
        pass


def test_filtered_rows_hold_ratio_and_recall_against_exact_numpy(tmp_path: Path) -> None:
    from bench.vectors import FILTERS, measure_vectors

    rows, errors = measure_vectors(2000, ["numpy", "edge"], 5, 32, tmp_path, 1, _InProcess(), "clip-like")
    assert not errors
    by = {r["backend"]: r for r in rows}
    for backend in ("numpy", "edge"):
        block = by[backend]["filtered"]
        assert set(block["filters"]) == set(FILTERS)
        for name, f in block["filters"].items():
            assert 0 < f["passing"] < 2000 and f["fraction"] == f["passing"] / 2000
            assert f["recall_at_20"]["median"] == 1.0, (backend, name)  # exact at this size
            assert f["filtered_vs_unfiltered"]["median"] > 0
            assert f["p50_ms"]["median"] <= f["p95_ms"]["median"]
        worst = max(f["filtered_vs_unfiltered"]["median"] for f in block["filters"].values())
        assert np.isclose(block["worst_filtered_vs_unfiltered"]["median"], worst)
    assert "payload_s" in by["edge"] and "payload_s" not in by["numpy"]


def test_recall_of_a_filter_no_point_passes() -> None:
    from bench.vectors import _recall

    assert _recall([[], []], [[], []]) == 1.0
    assert _recall([[1], []], [[], []]) == 0.0
    assert _recall([[1, 2], [3]], [[1, 4], [3]]) == 2 / 3


def test_filtered_target_is_judged_in_full_runs_only() -> None:
    from bench.report import evaluate_targets
    from bench.stats import summarize

    def status(mode: str, ratio: float) -> str:
        row = {"backend": "edge+optimize", "n": 1_000_000, "kind": "clip-like",
               "filtered": {"worst_filtered_vs_unfiltered": summarize([ratio])}}
        results = {"meta": {"mode": mode}, "vectors": [row]}
        (target,) = [t for t in evaluate_targets(results) if t["target"].startswith("Filtered search")]
        return target["status"]

    assert status("full", 1.6) == "reached" and status("full", 2.4) == "missed"
    assert status("smoke", 1.6) == "not measured"
