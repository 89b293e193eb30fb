"""`python -m bench.quantization [N] [--queries Q] [--dim D]`: what `IMGSEARCH_QDRANT_QUANTIZATION=int8`
costs in recall (docs/scale-out.md).

N CLIP-like vectors (`bench.vectors.clip_like_chunk`: one cone, 2,000 topics; 20,000 of 512-d
by default) go into a Qdrant Edge shard configured as a server collection made with
`qdrant_quantization=int8` (int8 scalar quantization, quantile 0.99, HNSW m=16/ef_construct=100),
and its optimiser builds HNSW and the int8 copy. Edge runs the same segment, HNSW and
quantization code as a Qdrant server; qdrant-client's in-process mode, the tests' stand-in for a
server, has no quantization at all, so this is where the figure can be measured without a server.

Held-out queries (same world, other seed) are searched for their top 20 and compared with numpy's
exact top 20 (recall@20 = shared ids / 20, averaged), on one shard and one graph:
- float: quantization ignored (the float vectors through the same HNSW);
- int8 + rescoring: what the product asks (`qdrant_server.OVERSAMPLING` x 20 candidates by int8
  scores, re-ranked by the float vectors);
- int8 alone: no rescoring (what quantization costs before rescoring repairs it);
each through HNSW (hnsw_ef 256, as the product's Edge searches) and by a full scan (a second
shard whose full_scan_threshold no segment reaches, so every point is scored: quantization's own
error, without HNSW's). Qdrant's `exact=True` is no such measure: it ignores quantization.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from imgsearch.stores.qdrant_layout import OVERSAMPLING

from .vectors import clip_like_chunk

LIMIT = 20
EF = 256
BATCH = 500


def _variants() -> dict[str, qe.QuantizationSearchParams]:
    return {
        "float (quantization ignored)": qe.QuantizationSearchParams(ignore=True),
        f"int8 + rescoring (oversampling {OVERSAMPLING:g})": qe.QuantizationSearchParams(
            rescore=True, oversampling=OVERSAMPLING),
        "int8 alone (no rescoring)": qe.QuantizationSearchParams(rescore=False),
    }


def _top(shard: qe.EdgeShard, queries: np.ndarray, params: qe.SearchParams) -> list[list[int]]:
    out = []
    for q in queries:
        request = qe.QueryRequest(limit=LIMIT, query=qe.Query.Nearest(q.tolist()), params=params,
                                  with_payload=False, with_vector=False)
        out.append([int(h.id) for h in shard.query(request)])
    return out


def measure(n: int = 20_000, dim: int = 512, queries: int = 200) -> dict[str, Any]:
    vectors = np.concatenate([clip_like_chunk(np.random.default_rng(1 + k), min(10_000, n - start), dim)
                              for k, start in enumerate(range(0, n, 10_000))])
    held_out = clip_like_chunk(np.random.default_rng(999), queries, dim)
    exact = np.argsort(-(held_out @ vectors.T), axis=1)[:, :LIMIT] + 1  # point ids are 1-based
    result: dict[str, Any] = {"n": n, "dim": dim, "queries": queries, "limit": LIMIT, "hnsw_ef": EF}
    recall: dict[str, dict[str, float]] = {name: {} for name in _variants()}
    with tempfile.TemporaryDirectory() as tmp:
        for how, threshold_kb in (("hnsw", 10_000), ("scan", 10**9)):
            shard = _filled(Path(tmp) / how, vectors, threshold_kb)
            began = time.perf_counter()
            shard.optimize()
            result[f"{how}_optimize_s"] = round(time.perf_counter() - began, 1)
            result[f"{how}_indexed_vectors"] = shard.info().indexed_vectors_count
            for name, quantization in _variants().items():
                began = time.perf_counter()
                found = _top(shard, held_out, qe.SearchParams(hnsw_ef=EF, quantization=quantization))
                ms = (time.perf_counter() - began) * 1000 / queries
                shared = [len(set(f) & set(e.tolist())) / LIMIT for f, e in zip(found, exact)]
                recall[name][how] = round(float(np.mean(shared)), 4)
                recall[name][f"{how}_ms"] = round(ms, 2)
            shard.close()
    result["recall_at_20"] = recall
    return result


def _filled(path: Path, vectors: np.ndarray, threshold_kb: int) -> qe.EdgeShard:
    """A shard laid out as an int8 server collection, holding `vectors` as points 1..N."""
    scalar = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=0.99, always_ram=True)
    graph = qe.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=threshold_kb)
    config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=vectors.shape[1], distance=qe.Distance.Cosine),
                           hnsw_config=graph, quantization_config=scalar)
    shard = qe.EdgeShard.create(str(path), config)
    for start in range(0, len(vectors), BATCH):
        points = [qe.Point(i + 1, vectors[i].tolist(), None) for i in range(start, min(start + BATCH, len(vectors)))]
        shard.update(qe.UpdateOperation.upsert_points(points))
    return shard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("n", type=int, nargs="?", default=20_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dim", type=int, default=512)
    args = parser.parse_args()
    print(json.dumps(measure(args.n, args.dim, args.queries), indent=2))


if __name__ == "__main__":
    main()
