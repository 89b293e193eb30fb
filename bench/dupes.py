"""`python -m bench.dupes OUT_DIR [--n 100000] [--runs 3]`: what finding duplicate groups costs on
N vectors (issue 17: "cost on 100k vectors; no all-pairs scan: use the vector engine").

The points are CLIP-like (`vectors.clip_like_chunk`: a shared cone, 2,000 topics) with planted
near-duplicates: a share of them (PLANTED) get 1-3 copies, each the original plus noise (cosine
0.93-0.99, what a resized or recompressed copy gives a CLIP model). They go into the product's
Edge store, which then builds its HNSW graph as an index run does past 100,000 unindexed points.
Timed, in a fresh process per run: the product's candidate step (`searcher.dupes.candidate_pairs`:
`get_vectors` + `search_many` for every point, at the default threshold) and the grouping of the
pairs (`UnionFind`). The pixel check is not part of it: it reads files, only for candidate pairs
(its cost per pair is in the duplicate evaluation). For scale, an exact all-pairs scan in numpy is
extrapolated from one timed block of 2,000 rows against all N.

Writes OUT_DIR/dupes-bench.json and prints a markdown row.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .child import IsolatedRunner
from .machine import machine_facts
from .stats import fmt, summarize
from .vectors import CHUNK, clip_like_chunk

PLANTED = 0.02  # share of the N points that are copies of another
DIM = 512
BLOCK = 2_000  # rows of the all-pairs block timed for the extrapolation


def _points(n: int, seed: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """N unit vectors, the last PLANTED share of them copies of earlier ones; (original, copy) pairs."""
    rng = np.random.default_rng(seed)
    copies = int(n * PLANTED)
    base = np.concatenate([clip_like_chunk(rng, min(CHUNK, n - copies - s), DIM)
                           for s in range(0, n - copies, CHUNK)])
    sources = rng.integers(0, n - copies, copies)
    noise = rng.standard_normal((copies, DIM), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    amount = rng.uniform(0.15, 0.4, (copies, 1)).astype(np.float32)  # cosine ~0.99 down to ~0.93
    made = base[sources] + amount * noise
    made /= np.linalg.norm(made, axis=1, keepdims=True)
    pairs = [(int(s), n - copies + k) for k, s in enumerate(sources)]
    return np.concatenate([base, made]).astype(np.float32), pairs


def build_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child: write the points into an Edge store and build its HNSW graph."""
    from imgsearch.stores.vectors import open_vector_store

    path, n = Path(args["path"]), args["n"]
    shutil.rmtree(path, ignore_errors=True)
    vectors, _ = _points(n, args["seed"])
    t = time.perf_counter()
    with open_vector_store(path=path, collection="bench") as store:
        store.ensure(DIM)
        for start in range(0, n, CHUNK):
            store.upsert(range(start, min(n, start + CHUNK)), vectors[start:start + CHUNK])
    upsert_s = time.perf_counter() - t
    t = time.perf_counter()
    with open_vector_store(path=path, collection="bench") as store:
        store.build_index()
    return {"upsert_s": upsert_s, "optimize_s": time.perf_counter() - t}


def find_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child: the product's candidate step and grouping over the whole store, timed."""
    from imgsearch.searcher.dupes import DEFAULT_THRESHOLD, UnionFind, candidate_pairs
    from imgsearch.stores.vectors import open_vector_store

    n = args["n"]
    _, planted = _points(n, args["seed"])
    with open_vector_store(path=Path(args["path"]), collection="bench") as store:
        store.ensure(DIM)
        t = time.perf_counter()
        pairs = candidate_pairs(store, range(n), DEFAULT_THRESHOLD)
        candidates_s = time.perf_counter() - t
    t = time.perf_counter()
    sets = UnionFind()
    for a, b in pairs:
        sets.union(a, b)
    groups = sets.groups()
    group_s = time.perf_counter() - t
    found = sum((min(a, b), max(a, b)) in pairs for a, b in planted)
    return {"candidates_s": candidates_s, "group_s": group_s, "total_s": candidates_s + group_s,
            "pairs": len(pairs), "groups": len(groups), "planted": len(planted),
            "planted_found": found, "threshold": DEFAULT_THRESHOLD}


def all_pairs_task(args: dict[str, Any]) -> dict[str, Any]:
    """Child: one BLOCK x N block of an exact all-pairs scan (numpy, float32), extrapolated to N x N."""
    n = args["n"]
    vectors, _ = _points(n, args["seed"])
    t = time.perf_counter()
    block = vectors[:BLOCK] @ vectors.T
    np.argpartition(-block, 9, axis=1)[:, :9]
    return {"estimated_s": (time.perf_counter() - t) * n / BLOCK}


def measure(out: Path, n: int, runs: int) -> dict[str, Any]:
    runner = IsolatedRunner(None)
    try:
        args = {"path": str(out / "work" / "dupes-store"), "n": n, "seed": 17}
        built = runner.run("dupes-build", args)
        found = [runner.run("dupes-find", args) for _ in range(runs)]
        scan = runner.run("dupes-all-pairs", args)
    finally:
        runner.close()
        shutil.rmtree(out / "work" / "dupes-store", ignore_errors=True)
    return {"n": n, "runs": runs, "build": built, "find": found, "all_pairs": scan,
            "total_s": summarize([f["total_s"] for f in found]),
            "candidates_s": summarize([f["candidates_s"] for f in found]),
            "group_s": summarize([f["group_s"] for f in found]),
            "machine": machine_facts()}


def markdown(r: dict[str, Any]) -> str:
    f = r["find"][0]
    return ("| vectors | groups found in (median s) | candidate step | grouping | pairs | planted pairs found "
            "| HNSW build s | all-pairs numpy (estimated s) |\n|---|---|---|---|---|---|---|---|\n"
            f"| {r['n']:,} | {fmt(r['total_s'])} | {fmt(r['candidates_s'])} | {fmt(r['group_s'], 2)} | "
            f"{f['pairs']:,} | {f['planted_found']:,} of {f['planted']:,} | {r['build']['optimize_s']:.0f} | "
            f"{r['all_pairs']['estimated_s']:.0f} |\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.dupes", description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args(argv)
    out = args.out_dir.expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    result = measure(out, args.n, args.runs)
    (out / "dupes-bench.json").write_text(json.dumps(result, indent=1))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
