"""How a collection on a Qdrant server is laid out when imgsearch creates it (settings
`qdrant_shards`, `qdrant_replicas`, `qdrant_on_disk`, `qdrant_quantization`; docs/scale-out.md),
and how a quantized collection is searched. A collection that exists keeps its own layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qdrant_client import models

from imgsearch.errors import ConfigError
from imgsearch.stores.vectors import FULL_SCAN_KB

# A quantized search fetches this many times `limit` by int8 scores, then keeps the best `limit`
# by their float vectors (docs/scale-out.md: recall@20 with and without rescoring).
OVERSAMPLING = 2.0
QUANTIZATIONS = ("none", "int8")


@dataclass(frozen=True)
class CollectionLayout:
    """How `ensure` lays out a collection it creates: its shards and replicas over a cluster's
    nodes (None: the server's defaults, one shard per node and one copy), vectors and payload
    indexes on disk (memory-mapped: the page cache keeps what is used) instead of in RAM, and
    int8 scalar quantization (a quarter of the vectors' size, kept in RAM, searches rescored)."""

    shards: int | None = None
    replicas: int | None = None
    on_disk: bool = False
    quantization: str = "none"

    def __post_init__(self) -> None:
        if self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"Unknown quantization {self.quantization!r}: use one of {', '.join(QUANTIZATIONS)}.")
        if any(n is not None and n < 1 for n in (self.shards, self.replicas)):
            raise ConfigError("Shards and replicas are counted from 1.")

    def create_options(self, dim: int) -> dict[str, Any]:
        """`create_collection`'s arguments for `dim`-dimensional cosine vectors."""
        quantization = None
        if self.quantization == "int8":
            scalar = models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
            quantization = models.ScalarQuantization(scalar=scalar)
        return {
            "vectors_config": models.VectorParams(size=dim, distance=models.Distance.COSINE,
                                                  on_disk=True if self.on_disk else None),
            "hnsw_config": models.HnswConfigDiff(full_scan_threshold=FULL_SCAN_KB, payload_m=16),
            "shard_number": self.shards,
            "replication_factor": self.replicas,
            "on_disk_payload": True if self.on_disk else None,
            "quantization_config": quantization,
        }

    def index_schema(self, kind: models.PayloadSchemaType) -> Any:
        """A payload index of this kind, on disk when the layout says so."""
        if not self.on_disk:
            return kind
        if kind == models.PayloadSchemaType.KEYWORD:
            return models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, on_disk=True)
        return models.FloatIndexParams(type=models.FloatIndexType.FLOAT, on_disk=True)


def search_params(config: Any) -> models.SearchParams | None:
    """What searches of a collection with this config (`CollectionInfo.config`) ask: rescoring
    when it is quantized, else nothing."""
    if getattr(config, "quantization_config", None) is None:
        return None
    return models.SearchParams(quantization=models.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING))
