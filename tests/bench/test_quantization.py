"""The int8 recall measure of docs/scale-out.md runs end to end (on a shard too small to be
indexed or quantized, so every variant is a float full scan and must be exact)."""

from __future__ import annotations

from bench.quantization import measure


def test_the_quantization_measure_compares_every_variant_with_exact_search() -> None:
    result = measure(n=1500, dim=32, queries=8)
    assert result["hnsw_indexed_vectors"] == 0  # 190 KB of vectors: below Edge's indexing threshold
    assert len(result["recall_at_20"]) == 3
    for recall in result["recall_at_20"].values():
        assert recall["hnsw"] == recall["scan"] == 1.0
