"""Vector store at scale: the product's Qdrant Edge store against qdrant-client's local mode and
a numpy brute-force baseline, on N unit vectors (CLIP-sized, 512-d): uniform random ones (HNSW's
worst case: every point nearly equidistant) or CLIP-like ones (see `clip_like_chunk`).

Each backend is built in one process (upsert time, disk) and reopened in another (reopen time,
search latency, RSS), so the searching process's RSS is what a fresh `imgsearch query` would
carry. "edge+optimize" is the same Edge store after its segment optimiser has built HNSW, as the
product's index run does once `search_index_threshold` vectors (100,000) are left unindexed.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .child import ChildFailed, Runner
from .stats import percentiles_ms, ratios, summarize

CHUNK = 10_000  # vectors generated and upserted per call
LIMIT = 20  # what a query with rerank of 20 fetches
COLLECTION = "bench"
BACKENDS = ("numpy", "edge", "edge+optimize", "qdrant-client")  # numpy first: the others are compared to it


KINDS = ("uniform", "clip-like")
TOPICS = 2_000  # clip-like: what a large photo collection holds many pictures of


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def clip_like_chunk(rng: np.random.Generator, size: int, dim: int) -> np.ndarray:
    """Unit vectors shaped like CLIP image embeddings: all inside one cone (any two photos have
    cosine ~0.4) and grouped by topic (two of one topic ~0.75), never the uniform sphere. The cone
    and topics are fixed (seed 0), so stores and queries of every run share one world."""
    world = np.random.default_rng(0)
    axis = _unit(world.standard_normal((1, dim), dtype=np.float32))
    topics = _unit(world.standard_normal((TOPICS, dim), dtype=np.float32))
    noise = _unit(rng.standard_normal((size, dim), dtype=np.float32))
    return _unit(0.6 * axis + 0.6 * topics[rng.integers(0, TOPICS, size)] + 0.5 * noise).astype(np.float32)


def unit_vectors(n: int, dim: int, seed: int, kind: str = "uniform") -> Iterator[tuple[int, np.ndarray]]:
    """(first id, chunk) of seeded unit vectors of a kind (KINDS), so no process holds all N at once."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        size = min(CHUNK, n - start)
        if kind == "clip-like":
            yield start, clip_like_chunk(rng, size, dim)
        else:
            yield start, _unit(rng.standard_normal((size, dim), dtype=np.float32))


def disk_mb(path: Path) -> float:
    """Space allocated on disk (blocks, not apparent size: stores preallocate sparse files)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                continue
    return total / 1e6


def build_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: write N vectors with one backend; times only the store's own calls."""
    backend, path, n, dim = args["backend"], Path(args["path"]), args["n"], args["dim"]
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    upsert_s = 0.0
    extra: dict[str, float] = {}
    if backend == "numpy":  # an .npy file written chunk by chunk (never two copies of 1M vectors)
        matrix = np.lib.format.open_memmap(path / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, dim))
        for start, chunk in unit_vectors(n, dim, args["seed"], args["kind"]):
            t = time.perf_counter()
            matrix[start:start + len(chunk)] = chunk
            upsert_s += time.perf_counter() - t
        t = time.perf_counter()
        matrix.flush()
        del matrix
        close_s = time.perf_counter() - t
    elif backend in ("edge", "edge+optimize"):
        from imgsearch.stores.vectors import open_vector_store

        store = open_vector_store(path=path, collection=COLLECTION)
        store.ensure(dim)
        for start, chunk in unit_vectors(n, dim, args["seed"], args["kind"]):
            t = time.perf_counter()
            store.upsert(range(start, start + len(chunk)), chunk)
            upsert_s += time.perf_counter() - t
        t = time.perf_counter()
        store.close()  # flushes
        close_s = time.perf_counter() - t
        if backend == "edge+optimize":
            t = time.perf_counter()
            with open_vector_store(path=path, collection=COLLECTION) as built:
                built.build_index()
            extra["optimize_s"] = time.perf_counter() - t
    elif backend == "qdrant-client":
        from qdrant_client import QdrantClient, models

        client = QdrantClient(path=str(path))
        params = models.VectorParams(size=dim, distance=models.Distance.COSINE)
        client.create_collection(COLLECTION, vectors_config=params)
        for start, chunk in unit_vectors(n, dim, args["seed"], args["kind"]):
            t = time.perf_counter()
            client.upsert(COLLECTION, points=models.Batch(ids=list(range(start, start + len(chunk))),
                                                          vectors=chunk.tolist()))
            upsert_s += time.perf_counter() - t
        t = time.perf_counter()
        client.close()
        close_s = time.perf_counter() - t
    else:
        raise ValueError(f"unknown backend {backend!r}")
    return {"upsert_s": upsert_s, "close_s": close_s, "points_per_s": n / (upsert_s + close_s),
            "disk_mb": disk_mb(path), **extra}


Search = Callable[[np.ndarray], list[int]]


def _reopen(backend: str, path: Path, dim: int) -> tuple[Search, Callable[[], None]]:
    """Open an existing store; returns its top-LIMIT search and how to close it."""
    if backend == "numpy":
        matrix = np.load(path / "vectors.npy")

        def numpy_search(q: np.ndarray) -> list[int]:
            scores = matrix @ q
            top = np.argpartition(-scores, LIMIT)[:LIMIT]
            return [int(i) for i in top[np.argsort(-scores[top])]]
        return numpy_search, lambda: None
    if backend in ("edge", "edge+optimize"):
        from imgsearch.stores.vectors import open_vector_store

        store = open_vector_store(path=path, collection=COLLECTION)
        store.ensure(dim)
        return (lambda q: [i for i, _ in store.search(q, LIMIT)]), store.close
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    def client_search(q: np.ndarray) -> list[int]:
        return [int(p.id) for p in client.query_points(COLLECTION, query=q.tolist(), limit=LIMIT).points]
    return client_search, client.close


def open_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: reopen the store, then time `queries` searches for the LIMIT nearest."""
    backend, path, dim = args["backend"], Path(args["path"]), args["dim"]
    queries = next(unit_vectors(args["queries"], dim, args["seed"], args["kind"]))[1]
    if backend in ("edge", "edge+optimize"):  # imports are not part of reopening
        import imgsearch.stores.edge  # noqa: F401
    elif backend == "qdrant-client":
        import qdrant_client  # noqa: F401
    t = time.perf_counter()
    search, close = _reopen(backend, path, dim)
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    search(queries[0])  # the first search may still map files in
    first_ms = (time.perf_counter() - t) * 1000
    lat, found = [], []
    for q in queries:
        t = time.perf_counter()
        found.append(search(q))
        lat.append(time.perf_counter() - t)
    close()
    return {"open_s": open_s, "first_search_ms": first_ms, **percentiles_ms(lat), "found": found}


# ---- parent side ---------------------------------------------------------------------------------

def _recall(found: list[list[int]], exact: list[list[int]]) -> float:
    hits = sum(len(set(f) & set(e)) for f, e in zip(found, exact))
    return hits / max(1, sum(len(e) for e in exact))


def measure_vectors(
    n: int, backends: list[str], queries: int, dim: int, work: Path, runs: int, runner: Runner,
    kind: str = "uniform",
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Every backend at size n, run by run (ratios against numpy within the same run). A backend
    that fails is left out with its error; the others are still reported."""
    per: dict[str, list[dict[str, Any]]] = {b: [] for b in backends}
    errors: list[dict[str, str]] = []
    for run in range(runs):
        for backend in [b for b in backends if b in per]:
            args = {"backend": backend, "path": str(work / f"{n}" / backend.replace("+", "-")),
                    "n": n, "dim": dim, "seed": 1000 + run, "queries": queries, "kind": kind}
            try:
                built = runner.run("vec-build", args)
                opened = runner.run("vec-open", {**args, "seed": 9000 + run})
            except ChildFailed as e:
                errors.append({"section": "vectors", "what": f"{backend} at {n:,}", "error": str(e)})
                del per[backend]
                continue
            per[backend].append({"build": built, "open": opened})
        shutil.rmtree(work / f"{n}", ignore_errors=True)  # disk: 1M vectors are GBs per backend
    exact = [r["open"]["found"] for r in per.get("numpy", [])]
    rows = []
    for backend, rs in per.items():
        row: dict[str, Any] = {"backend": backend, "n": n, "runs": runs, "kind": kind}
        for key in ("upsert_s", "close_s", "points_per_s", "disk_mb", "peak_rss_mb"):
            name = "build_peak_rss_mb" if key == "peak_rss_mb" else key
            row[name] = summarize([r["build"][key] for r in rs])
        if backend == "edge+optimize":
            row["optimize_s"] = summarize([r["build"]["optimize_s"] for r in rs])
        for key in ("open_s", "first_search_ms", "p50_ms", "p95_ms", "peak_rss_mb"):
            row[key] = summarize([r["open"][key] for r in rs])
        row["recall_at_20"] = summarize([_recall(r["open"]["found"], e) for r, e in zip(rs, exact)])
        row["p50_vs_numpy"] = summarize(ratios([r["open"]["p50_ms"] for r in rs],
                                               [r["open"]["p50_ms"] for r in per.get("numpy", [])]))
        rows.append(row)
    return rows, errors
