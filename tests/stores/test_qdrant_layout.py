"""How a collection on a Qdrant server is laid out (settings `qdrant_shards`, `qdrant_replicas`,
`qdrant_on_disk`, `qdrant_quantization`): what `ensure` asks the server for, and how a quantized
collection is searched.

qdrant-client's in-process mode accepts these options but keeps only the vectors' `on_disk`: it
has no shards, replicas or quantization. So the client here records what it is asked and reports
it back in `get_collection` as a server does; the searches themselves run in the in-process
client and must answer as before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import pytest
from qdrant_client import QdrantClient, models

from imgsearch.errors import ConfigError
from imgsearch.settings import Settings
from imgsearch.stores import open_stores
from imgsearch.stores.qdrant_layout import OVERSAMPLING, CollectionLayout
from imgsearch.stores.qdrant_server import ServerVectorStore

# the in-process client searches exactly and says the rescoring parameters change nothing there
pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")


class ServerLikeClient(QdrantClient):
    """An in-process client that keeps the layout asked for and the search parameters used."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.created: dict[str, Any] = {}
        self.index_schemas: dict[str, Any] = {}
        self.search_params: list[Any] = []

    def create_collection(self, collection_name: str, **kwargs: Any) -> bool:  # type: ignore[override]
        self.created = kwargs
        return super().create_collection(collection_name, **kwargs)

    def create_payload_index(self, collection_name: str, field_name: str, **kwargs: Any) -> Any:  # type: ignore[override]
        self.index_schemas[field_name] = kwargs["field_schema"]
        return super().create_payload_index(collection_name, field_name, **kwargs)

    def get_collection(self, collection_name: str, **kwargs: Any) -> models.CollectionInfo:
        info = super().get_collection(collection_name, **kwargs)
        asked = self.created
        info.config.params.shard_number = asked.get("shard_number") or 1
        info.config.params.replication_factor = asked.get("replication_factor") or 1
        info.config.params.on_disk_payload = asked.get("on_disk_payload") or False
        info.config.quantization_config = asked.get("quantization_config")
        return info

    def query_points(self, collection_name: str, **kwargs: Any) -> Any:  # type: ignore[override]
        self.search_params.append(kwargs.get("search_params"))
        return super().query_points(collection_name, **kwargs)

    def query_batch_points(self, collection_name: str, requests: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.search_params += [r.params for r in requests]
        return super().query_batch_points(collection_name, requests, **kwargs)


def _vectors(n: int = 50, dim: int = 16) -> np.ndarray:
    v = np.random.default_rng(4).normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill_and_search(store: ServerVectorStore) -> None:
    v = _vectors()
    store.ensure(v.shape[1])
    store.upsert(list(range(1, len(v) + 1)), v)
    assert store.search(v[6], 3)[0][0] == 7
    assert [hits[0][0] for hits in store.search_many(v[:4], 2)] == [1, 2, 3, 4]


def test_by_default_the_server_decides_and_nothing_is_quantized() -> None:
    client = ServerLikeClient()
    _fill_and_search(ServerVectorStore(collection="photos", client=client))
    asked = client.created
    assert asked["shard_number"] is None and asked["replication_factor"] is None
    assert asked["quantization_config"] is None and asked["on_disk_payload"] is None
    assert asked["vectors_config"].on_disk is None
    assert client.index_schemas["dirs"] == models.PayloadSchemaType.KEYWORD
    # no quantization asked for (search_many only narrows its beam: hnsw_ef)
    assert client.search_params and all(p is None or p.quantization is None for p in client.search_params)
    client.close()


def test_the_settings_lay_out_a_new_collection_over_a_cluster(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"SHARDS": "6", "REPLICAS": "2", "ON_DISK": "true", "QUANTIZATION": "int8"}.items():
        monkeypatch.setenv(f"IMGSEARCH_QDRANT_{name}", value)
    settings = Settings(home=tmp_path / "home", models="tiny")
    client = ServerLikeClient()
    with open_stores(settings, {"clip_model": "test"}, 16, client=client) as stores:
        info = client.get_collection(settings.collection)
        assert (info.config.params.shard_number, info.config.params.replication_factor) == (6, 2)
        assert info.config.params.vectors.on_disk is True  # the one the in-process client keeps itself
        assert info.config.params.on_disk_payload is True
        scalar = info.config.quantization_config.scalar
        assert (scalar.type, scalar.quantile, scalar.always_ram) == (models.ScalarType.INT8, 0.99, True)
        assert client.index_schemas["dirs"] == models.KeywordIndexParams(type="keyword", on_disk=True)
        assert client.index_schemas["date"] == models.FloatIndexParams(type="float", on_disk=True)
        _fill_and_search(stores.vectors)  # type: ignore[arg-type]
    rescored = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=True, oversampling=OVERSAMPLING))
    assert client.search_params and all(p is not None and p.quantization == rescored.quantization
                                        for p in client.search_params)
    client.close()


def test_a_collection_that_exists_keeps_its_layout_and_a_quantized_one_is_rescored() -> None:
    client = ServerLikeClient()
    ServerVectorStore(collection="photos", client=client, layout=CollectionLayout(quantization="int8")).ensure(16)
    client.created = {**client.created, "shard_number": 3}  # as the server made it
    reopened = ServerVectorStore(collection="photos", client=client, layout=CollectionLayout(shards=1))
    client.search_params.clear()
    _fill_and_search(reopened)
    assert client.created["shard_number"] == 3  # not created again
    assert all(p is not None and p.quantization.rescore for p in client.search_params)
    client.close()


def test_a_layout_is_checked() -> None:
    with pytest.raises(ConfigError, match="int8"):
        CollectionLayout(quantization="int4")
    with pytest.raises(ConfigError):
        CollectionLayout(shards=0)
    with pytest.raises(pydantic.ValidationError):
        Settings(qdrant_quantization="binary")  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        Settings(qdrant_replicas=0)


def test_the_settings_for_beyond_one_machine_are_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "scale-out.md").read_text()
    for name in Settings.model_fields:
        if name.startswith("qdrant_") or name == "catalog_url":
            assert f"IMGSEARCH_{name.upper()}" in doc, name
