"""`imgsearch status`: what the index holds and where, without loading any model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from imgsearch.errors import StoreLockedError
from imgsearch.models.onnx_image import image_runtime_status
from imgsearch.models.profiles import resolve_profile
from imgsearch.private import make_private
from imgsearch.settings import Settings
from imgsearch.stores.catalog import Catalog, CatalogCounts, open_catalog
from imgsearch.stores.vectors import VectorStore, open_vector_store


@dataclass(frozen=True)
class Status:
    profile: str
    images: int
    vectors: int | None  # None when another process holds the embedded store
    captioned: int
    pending_vectors: int
    pending_captions: int
    skipped: int
    text_read: int  # pictures whose text (OCR) has been read, text or none
    tagged: int  # pictures given their zero-shot tags (some or none)
    skipped_files: list[tuple[str, str]]
    catalog: str
    vector_store: str
    models: dict[str, str]
    note: str | None = None
    # What embeds pictures (CLIP's image tower: torch, onnx, onnx-int8) and why, with each ONNX
    # variant's admission figures (`onnx_image.image_runtime_status`)
    image_runtime: dict[str, object] | None = None

    def as_json(self) -> dict[str, object]:
        d = asdict(self)
        d["skipped_files"] = [{"path": p, "reason": r} for p, r in self.skipped_files]
        return d


def read_status(settings: Settings) -> Status:
    """Status from the stores themselves (no service running: this process opens them)."""
    resolve_profile(settings)  # an unknown profile is an error here too
    make_private(settings.index_dir)
    catalog = open_catalog(settings.catalog)
    try:
        counts, meta, skipped = catalog.counts(), catalog.meta(), catalog.skipped()
    finally:
        catalog.close()
    vectors, note = None, None
    try:
        if settings.qdrant_url:
            store = open_vector_store(url=settings.qdrant_url, api_key=settings.qdrant_api_key,
                                      collection=settings.collection)
        else:
            store = open_vector_store(path=settings.edge_path, collection=settings.collection)
        try:
            if "vector_dim" in meta:
                store.ensure(int(meta["vector_dim"]))
            vectors, where = store.count(), store.location
        finally:
            store.close()
    except StoreLockedError:
        where = str(settings.edge_path)
        note = "the vector store is open in another imgsearch process (an index run?)"
    return _status(settings, catalog, counts, meta, skipped, vectors, where, note)


def status_of(settings: Settings, catalog: Catalog, vectors: VectorStore) -> Status:
    """Status from stores this process already holds open (the service)."""
    return _status(settings, catalog, catalog.counts(), catalog.meta(), catalog.skipped(), vectors.count(),
                   vectors.location, None)


def _status(
    settings: Settings, catalog: Catalog, counts: CatalogCounts, meta: dict[str, str],
    skipped: list[tuple[str, str]], vectors: int | None, where: str, note: str | None,
) -> Status:
    return Status(
        profile=settings.models, images=counts.images, vectors=vectors, captioned=counts.captioned,
        pending_vectors=counts.images - counts.with_vector,
        pending_captions=counts.with_vector - counts.captioned, skipped=counts.skipped, text_read=counts.text_read,
        tagged=counts.tagged,
        skipped_files=skipped, catalog=catalog.location, vector_store=where,
        models={k: v for k, v in meta.items() if k != "vector_dim"}, note=note,
        image_runtime=image_runtime_status(settings.index_dir, settings.image_runtime),
    )
