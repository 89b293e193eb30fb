"""The index in this process: it owns the stores and the index folder, loads models only when a
call needs them, and takes the torch-free path by itself when it can (words only, no rerank,
with CLIP's text tower exported beside the index: a cold query in about a second). The stores are
opened with the vector size the catalog records: no model is loaded just to learn it.

The watch service's engine is one of these, over models and stores it already holds."""

from __future__ import annotations

import logging
from dataclasses import replace
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgsearch.progress import Progress
from imgsearch.searcher.embed import Embedder, OnnxEmbedder, TorchEmbedder
from imgsearch.searcher.hits import Hit
from imgsearch.searcher.query import run
from imgsearch.searcher.request import IMAGE, SearchRequest
from imgsearch.settings import Settings

log = logging.getLogger(__name__)


class LocalIndex:
    def __init__(self, settings: Settings, models: Any = None, stores: Any = None, client: object = None) -> None:
        """`models` and `stores` already loaded (the service's); else opened on first need.
        `client`: a qdrant_client.QdrantClient to use instead of a URL (tests use an in-process one)."""
        self.settings, self._client = settings, client
        self._models, self._stores = models, stores
        self._owns_stores = stores is None

    # --- what it holds, opened lazily ------------------------------------------------------------
    @property
    def models(self) -> Any:
        if self._models is None:
            from imgsearch.models import Models

            self._models = Models(self.settings)
        return self._models

    def _open_stores(self) -> Any:
        """The stores, opened for the models' facts and the catalog's vector size; None when
        nothing was ever indexed here (no size recorded)."""
        if self._stores is not None:
            return self._stores
        from imgsearch.models.profiles import model_facts, resolve_profile
        from imgsearch.stores import open_stores, recorded_dim

        dim = recorded_dim(self.settings)
        if dim is None:
            return None
        self._stores = open_stores(self.settings, model_facts(resolve_profile(self.settings)), dim,
                                   client=self._client)
        from imgsearch.indexer.backfill import backfill

        backfill(self._stores)  # an index from before dates and cameras were kept: upgraded on open
        return self._stores

    def _embedder(self, request: SearchRequest) -> tuple[Embedder, Any]:
        """(embedder, models to rerank with or None): ONNX words when nothing needs torch."""
        pictures = any(t.kind == IMAGE for t in request.terms)
        rerank = request.rerank_k > 0 and bool(request.positive_words)
        if self._models is None and not pictures and not rerank:
            onnx = self._onnx()
            if onnx is not None:
                return onnx, None
        return TorchEmbedder(self.models), self.models if rerank else None

    def _onnx(self) -> OnnxEmbedder | None:
        from imgsearch.models.onnx_text import OnnxTextEncoder
        from imgsearch.models.profiles import resolve_profile
        from imgsearch.models.text_export import export_folder, read_meta, wants_int8

        meta = read_meta(self.settings.index_dir)
        if meta is None or meta.get("clip_model") != resolve_profile(self.settings).clip_id:
            return None
        try:
            return OnnxEmbedder(OnnxTextEncoder(export_folder(self.settings.index_dir), meta,
                                                int8=wants_int8(meta, self.settings.image_runtime)))
        except Exception as exc:  # a damaged export only costs speed: the torch path still answers
            log.warning("The exported text encoder failed (%s); loading CLIP instead.", exc)
            return None

    # --- the Index interface ---------------------------------------------------------------------
    def search(self, request: SearchRequest) -> list[Hit]:
        request.check()
        if request.min_match is None:
            request = replace(request, min_match=self.settings.min_match)
        embedder, rerank_models = self._embedder(request)
        stores = self._open_stores()
        if stores is None:
            return []
        hits = run(request, stores, embedder, rerank_models)
        if self._owns_stores and isinstance(embedder, TorchEmbedder):
            from imgsearch.models.text_export import ensure_text_export

            ensure_text_export(self.models.clip, self.settings.index_dir)  # the next cold query needs no torch
        return hits

    def index(self, paths: Sequence[Path], *, captions: bool = True, texts: bool = True,
              precompute_rerank: bool = False,
              progress: Progress | None = None) -> dict[str, Any]:
        from imgsearch.indexer import run_index

        self.close()  # the run takes the writer lock and opens the stores for itself
        return run_index(self.settings, paths, captions=captions, texts=texts, precompute_rerank=precompute_rerank,
                         progress=progress, client=self._client).as_json()

    def status(self) -> dict[str, Any]:
        if self._stores is None:
            from imgsearch.status import read_status

            return read_status(self.settings).as_json()
        from imgsearch.status import status_of

        return status_of(self.settings, self._stores.catalog, self._stores.vectors).as_json()

    def tags(self) -> dict[str, Any]:
        """The tags in use, each with how many pictures carry it, most first. The catalog alone
        answers: no model, and no vector store (another process may hold it)."""
        from imgsearch.models.profiles import resolve_profile
        from imgsearch.stores import recorded_dim
        from imgsearch.stores.catalog import open_catalog

        # its file's name only: the HTTP API must not tell other origins where files lie
        vocabulary = Path(resolve_profile(self.settings).tags).name
        if self._stores is None and recorded_dim(self.settings) is None:
            return {"tags": [], "tagged": 0, "images": 0, "vocabulary": vocabulary}
        catalog = self._stores.catalog if self._stores is not None else open_catalog(self.settings.catalog)
        try:
            counts = catalog.counts()
            return {"tags": [{"label": label, "count": n} for label, n in catalog.tag_counts()],
                    "tagged": counts.tagged, "images": counts.images, "vocabulary": vocabulary}
        finally:
            if self._stores is None:
                catalog.close()

    # --- concepts taught by example (imgsearch.library.concepts) ---------------------------------
    def concept_add(self, name: str, positives: Sequence[Any], negatives: Sequence[Any] = (), *,
                    random_negatives: int | None = None, read_files: bool = True) -> Any:
        """Train (or retrain, keeping its examples) the concept `name`; examples are paths or
        `Picture`s. `read_files` False (the service): a path the catalog lacks is not read but
        listed in the report's `need_data`. Returns a ConceptReport."""
        from imgsearch.concepts import DEFAULT_RANDOM_NEGATIVES

        from .concepts import Picture, add_concept

        stores = self._open_stores()
        if stores is None:
            from imgsearch.concepts import ConceptError

            raise ConceptError("nothing is indexed here yet: index pictures first (imgsearch index PATH)")
        pics = [[p if isinstance(p, Picture) else Picture(str(p)) for p in side] for side in (positives, negatives)]
        n = DEFAULT_RANDOM_NEGATIVES if random_negatives is None else random_negatives
        def embed(data: bytes, picture: str) -> Any:  # CLIP is loaded only for a picture the index lacks
            return TorchEmbedder(self.models).image(data, picture)

        return add_concept(stores, embed, name, pics[0], pics[1], random_negatives=n, read_files=read_files)

    def concepts(self) -> list[Any]:
        """Every concept (imgsearch.concepts.Concept), by name."""
        from imgsearch.stores.concepts import ConceptStore

        stores = self._open_stores()
        return [] if stores is None else ConceptStore(stores.catalog).all()

    def concept(self, name: str) -> Any:
        """The concept of this name; UnknownConceptError when there is none."""
        from imgsearch.concepts import UnknownConceptError, check_name
        from imgsearch.stores.concepts import ConceptStore

        stores = self._open_stores()
        if stores is None:
            raise UnknownConceptError(name)
        return ConceptStore(stores.catalog).named(check_name(name))

    def concept_remove(self, name: str) -> None:
        from imgsearch.concepts import UnknownConceptError, check_name
        from imgsearch.stores.concepts import ConceptStore

        stores = self._open_stores()
        if stores is None or not ConceptStore(stores.catalog).remove(check_name(name)):
            raise UnknownConceptError(name)

    def dupes(self, *, threshold: float | None = None, folders: Sequence[str] = (),
              progress: Progress | None = None) -> dict[str, Any]:
        """Groups of pictures that are the same photo, the one to keep first (`searcher.dupes`),
        as JSON. Reads files only for candidate pairs; deletes nothing."""
        from imgsearch.searcher.dupes import DEFAULT_THRESHOLD, DupesReport, find_dupes

        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        stores = self._open_stores()
        if stores is None:
            return DupesReport((), 0, 0, 0, threshold).as_json()
        return find_dupes(stores, threshold=threshold, folders=folders, progress=progress).as_json()

    def close(self) -> None:
        if self._owns_stores and self._stores is not None:
            self._stores.close()
            self._stores = None

    def __enter__(self) -> LocalIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
