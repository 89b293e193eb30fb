"""The two stores (catalog and vectors), opened together from settings."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from imgsearch.private import make_private
from imgsearch.settings import Settings
from imgsearch.stores.catalog import Catalog, open_catalog
from imgsearch.stores.vectors import VectorStore, open_vector_store


@dataclass
class Stores:
    catalog: Catalog
    vectors: VectorStore
    # Held around a write that touches both stores (a batch's rows and vectors), so a reader that
    # takes it too (the service's status) never sees one store ahead of the other.
    lock: AbstractContextManager[object] = field(default_factory=nullcontext)
    # The lease id under which this process writes now (`stores.writers`), None when it does not.
    writer: str | None = None

    def close(self) -> None:
        self.vectors.close()
        self.catalog.close()

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_stores(settings: Settings, model_facts: dict[str, str], dim: int, client: object = None) -> Stores:
    """Open catalog and vector store, refusing an index built by other models. `client` is a
    qdrant_client.QdrantClient to use instead of a URL (tests use an in-process one)."""
    make_private(settings.index_dir)
    catalog = open_catalog(settings.catalog)
    try:
        catalog.check_models({**model_facts, "vector_dim": str(dim)})
        if settings.qdrant_url or client is not None:
            from imgsearch.stores.qdrant_layout import CollectionLayout

            layout = CollectionLayout(settings.qdrant_shards, settings.qdrant_replicas, settings.qdrant_on_disk,
                                      settings.qdrant_quantization)
            vectors = open_vector_store(url=settings.qdrant_url, api_key=settings.qdrant_api_key,
                                        collection=settings.collection, client=client, layout=layout)
        else:
            vectors = open_vector_store(path=settings.edge_path, collection=settings.collection)
        vectors.ensure(dim)
    except BaseException:
        catalog.close()
        raise
    return Stores(catalog, vectors)


def recorded_dim(settings: Settings) -> int | None:
    """The vector size the catalog records for this index (None: nothing indexed yet). Opening
    the stores needs it; reading it here spares loading CLIP only to learn it."""
    catalog = open_catalog(settings.catalog)
    try:
        dim = catalog.meta().get("vector_dim")
    finally:
        catalog.close()
    return int(dim) if dim else None
