"""Vector store at scale: the product's Qdrant Edge store against qdrant-client's local mode and
a numpy brute-force baseline, on N unit vectors (CLIP-sized, 512-d): uniform random ones (HNSW's
worst case: every point nearly equidistant) or CLIP-like ones (see `clip_like_chunk`).

Each backend is built in one process (upsert time, disk) and reopened in another (reopen time,
search latency, RSS), so the searching process's RSS is what a fresh `imgsearch query` would
carry. "edge+optimize" is the same Edge store after its segment optimiser has built HNSW, as the
product's index run does once `search_index_threshold` vectors (100,000) are left unindexed.

Filtered search (issue 14: "a filtered search costs at most 2x an unfiltered one"): every point of
the numpy and Edge backends gets a payload (`payload_columns`: 100 folders of unequal sizes, dates
over 10 years, 5 cameras, drawn independently of the vectors), written through the product's
`set_payload` in a pass of its own after the vectors, so `upsert_s` times the same calls as before
and `payload_s` the payloads. Each query is then searched unfiltered and with each of `FILTERS`
(one folder ~1 %, a date range ~50 %, one camera ~10 %), interleaved so all four see the same
machine; numpy's filtered search is exact over the passing points, the recall reference.
qdrant-client gets neither: local mode checks a filter point by point in Python.
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

# Payloads (`payload_columns`): folder k holds a share of the points proportional to 1/(k+1) (Zipf:
# the largest ~19 %, the smallest ~0.2 %), dates are uniform over 2015-2024, cameras have fixed shares.
FOLDERS = 100
FOLDER_SHARES = (1.0 / np.arange(1, FOLDERS + 1)) / (1.0 / np.arange(1, FOLDERS + 1)).sum()
FILTER_FOLDER = int(np.argmin(np.abs(FOLDER_SHARES - 0.01)))  # the folder nearest 1 % (the 19th largest)
DATE_FROM = 1_420_070_400.0  # 2015-01-01T00:00:00Z
YEAR_S = 365.25 * 86_400
YEARS = 10
CAMERAS = ("Apple iPhone 12", "Canon EOS 80D", "Google Pixel 7", "Fujifilm X-T4", "Sony ILCE-7M3")
CAMERA_SHARES = (0.45, 0.25, 0.15, 0.10, 0.05)
FILTER_CAMERA = 3  # the 10 % one
PAYLOAD_SEED = 77  # payloads are one world for every run and backend of a size
# name: what a filtered search keeps (the share each one aims at: the measured share is reported)
FILTERS = {"folder": "one folder, ~1 %", "date": "5 of 10 years, ~50 %", "camera": "one camera, ~10 %"}


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


def folder_path(k: int) -> str:
    return f"/photos/album-{k:03d}"


def payload_columns(n: int) -> dict[str, np.ndarray]:
    """Point i's folder index, date (epoch s) and camera index: seeded, so every process agrees."""
    rng = np.random.default_rng(PAYLOAD_SEED)
    return {"folder": rng.choice(FOLDERS, size=n, p=FOLDER_SHARES).astype(np.int16),
            "date": DATE_FROM + rng.random(n) * YEARS * YEAR_S,
            "camera": rng.choice(len(CAMERAS), size=n, p=CAMERA_SHARES).astype(np.int8)}


def payloads(columns: dict[str, np.ndarray], ids: range) -> list[dict[str, Any]]:
    """The product's payload (`point_payload`) of each id: a photo in its folder under /photos."""
    from imgsearch.stores.vectors import point_payload

    folder, date, camera = columns["folder"], columns["date"], columns["camera"]
    return [point_payload(f"{folder_path(int(folder[i]))}/IMG_{i:07d}.jpg", f"{i:064x}", float(date[i]),
                          CAMERAS[int(camera[i])]) for i in ids]


def filter_masks(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Which points pass each of FILTERS (the same conditions as `point_filters`)."""
    date = columns["date"]
    return {"folder": columns["folder"] == FILTER_FOLDER,
            "date": (date >= DATE_FROM) & (date < DATE_FROM + YEARS / 2 * YEAR_S),
            "camera": columns["camera"] == FILTER_CAMERA}


def point_filters() -> dict[str, Any]:
    """FILTERS as the product's PointFilter."""
    from imgsearch.stores.vectors import PointFilter

    return {"folder": PointFilter(folders=(folder_path(FILTER_FOLDER),)),
            "date": PointFilter(date_from=DATE_FROM, date_until=DATE_FROM + YEARS / 2 * YEAR_S),
            "camera": PointFilter(cameras=(CAMERAS[FILTER_CAMERA],))}


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
        store.ensure(dim)  # also creates the payload indexes, before any point (as the product does)
        for start, chunk in unit_vectors(n, dim, args["seed"], args["kind"]):
            t = time.perf_counter()
            store.upsert(range(start, start + len(chunk)), chunk)
            upsert_s += time.perf_counter() - t
        t = time.perf_counter()
        store.flush()  # what close() timed before payloads existed
        close_s = time.perf_counter() - t
        payload_s, columns = 0.0, payload_columns(n)  # payloads: a pass of their own, timed apart
        for start in range(0, n, CHUNK):
            ids = range(start, min(n, start + CHUNK))
            batch = payloads(columns, ids)
            t = time.perf_counter()
            store.set_payload(ids, batch)
            payload_s += time.perf_counter() - t
        t = time.perf_counter()
        store.close()  # flushes the payloads
        extra["payload_s"] = payload_s + time.perf_counter() - t
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


def _top(scores: np.ndarray) -> np.ndarray:
    """Positions of the LIMIT highest scores, best first (all of them when there are fewer)."""
    if len(scores) > LIMIT:
        top = np.argpartition(-scores, LIMIT)[:LIMIT]
        return top[np.argsort(-scores[top])]
    return np.argsort(-scores)


def _reopen(
    backend: str, path: Path, dim: int, n: int
) -> tuple[Search, dict[str, Search], Callable[[], None]]:
    """Open an existing store; returns its top-LIMIT search, its filtered searches (FILTERS; none
    for qdrant-client) and how to close it."""
    if backend == "numpy":
        matrix = np.load(path / "vectors.npy")

        def numpy_search(q: np.ndarray) -> list[int]:
            return [int(i) for i in _top(matrix @ q)]

        def numpy_filtered(rows: np.ndarray) -> Search:
            """Exact over the passing rows: a gather of the few, or one product over all for many."""
            gather = len(rows) * 4 < len(matrix)
            return lambda q: [int(rows[i]) for i in _top(matrix[rows] @ q if gather else (matrix @ q)[rows])]
        masks = filter_masks(payload_columns(n))  # numpy's "payload index": computed on open
        return numpy_search, {k: numpy_filtered(np.flatnonzero(m)) for k, m in masks.items()}, lambda: None
    if backend in ("edge", "edge+optimize"):
        from imgsearch.stores.vectors import open_vector_store

        store = open_vector_store(path=path, collection=COLLECTION)
        store.ensure(dim)

        def edge_filtered(where: Any) -> Search:
            return lambda q: [i for i, _ in store.search(q, LIMIT, where)]
        filtered = {k: edge_filtered(f) for k, f in point_filters().items()}
        return (lambda q: [i for i, _ in store.search(q, LIMIT)]), filtered, store.close
    from qdrant_client import QdrantClient

    client = QdrantClient(path=str(path))
    def client_search(q: np.ndarray) -> list[int]:
        return [int(p.id) for p in client.query_points(COLLECTION, query=q.tolist(), limit=LIMIT).points]
    return client_search, {}, client.close


def open_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child task: reopen the store, then time `queries` searches for the LIMIT nearest, each
    followed by the same query under each filter (interleaved: a ratio of two loops run minutes
    apart on a shared CPU would measure the other load)."""
    backend, path, dim, n = args["backend"], Path(args["path"]), args["dim"], args["n"]
    queries = next(unit_vectors(args["queries"], dim, args["seed"], args["kind"]))[1]
    if backend in ("edge", "edge+optimize"):  # imports are not part of reopening
        import imgsearch.stores.edge  # noqa: F401
    elif backend == "qdrant-client":
        import qdrant_client  # noqa: F401
    t = time.perf_counter()
    search, filtered, close = _reopen(backend, path, dim, n)
    open_s = time.perf_counter() - t
    t = time.perf_counter()
    search(queries[0])  # the first search may still map files in
    first_ms = (time.perf_counter() - t) * 1000
    for run_filtered in filtered.values():  # and so may each filter's first use of its index
        run_filtered(queries[0])
    lat, found = [], []
    f_lat: dict[str, list[float]] = {k: [] for k in filtered}
    f_found: dict[str, list[list[int]]] = {k: [] for k in filtered}
    for q in queries:
        t = time.perf_counter()
        found.append(search(q))
        lat.append(time.perf_counter() - t)
        for name, run_filtered in filtered.items():
            t = time.perf_counter()
            f_found[name].append(run_filtered(q))
            f_lat[name].append(time.perf_counter() - t)
    close()
    passing = {k: int(m.sum()) for k, m in filter_masks(payload_columns(n)).items()} if filtered else {}
    return {"open_s": open_s, "first_search_ms": first_ms, **percentiles_ms(lat), "found": found,
            "filtered": {k: {**percentiles_ms(f_lat[k]), "found": f_found[k], "passing": passing[k]}
                         for k in filtered}}


# ---- parent side ---------------------------------------------------------------------------------

def _recall(found: list[list[int]], exact: list[list[int]]) -> float:
    """Share of the exact hits found; with none to find (a filter no point passes), 1.0 if
    nothing was returned either."""
    hits = sum(len(set(f) & set(e)) for f, e in zip(found, exact))
    total = sum(len(e) for e in exact)
    if total == 0:
        return 1.0 if not any(found) else 0.0
    return hits / total


def _filtered_rows(rs: list[dict[str, Any]], exact: list[dict[str, Any]], n: int) -> dict[str, Any]:
    """Per filter: share passing, p50/p95, recall against numpy's exact filtered search of the same
    run, and its p50 over the same run's unfiltered p50; plus the slowest filter's ratio, run by run."""
    out: dict[str, Any] = {}
    for name in FILTERS:
        runs = [r["open"]["filtered"][name] for r in rs]
        out[name] = {
            "passing": runs[0]["passing"], "fraction": runs[0]["passing"] / max(1, n),
            "p50_ms": summarize([f["p50_ms"] for f in runs]),
            "p95_ms": summarize([f["p95_ms"] for f in runs]),
            "recall_at_20": summarize([_recall(f["found"], e["open"]["filtered"][name]["found"])
                                       for f, e in zip(runs, exact)]),
            "filtered_vs_unfiltered": summarize(ratios([f["p50_ms"] for f in runs],
                                                       [r["open"]["p50_ms"] for r in rs])),
        }
    worst = [max(r["open"]["filtered"][k]["p50_ms"] for k in FILTERS) / r["open"]["p50_ms"]
             for r in rs if r["open"]["p50_ms"]]
    return {"filters": out, "worst_filtered_vs_unfiltered": summarize(worst)}


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
        if "payload_s" in rs[0]["build"]:
            row["payload_s"] = summarize([r["build"]["payload_s"] for r in rs])
        for key in ("open_s", "first_search_ms", "p50_ms", "p95_ms", "peak_rss_mb"):
            row[key] = summarize([r["open"][key] for r in rs])
        row["recall_at_20"] = summarize([_recall(r["open"]["found"], e) for r, e in zip(rs, exact)])
        row["p50_vs_numpy"] = summarize(ratios([r["open"]["p50_ms"] for r in rs],
                                               [r["open"]["p50_ms"] for r in per.get("numpy", [])]))
        if rs[0]["open"]["filtered"] and per.get("numpy"):
            row["filtered"] = _filtered_rows(rs, per["numpy"], n)
        rows.append(row)
    return rows, errors
