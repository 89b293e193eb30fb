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
        from imgsearch.models.text_export import export_folder, read_meta

        meta = read_meta(self.settings.index_dir)
        if meta is None or meta.get("clip_model") != resolve_profile(self.settings).clip_id:
            return None
        try:
            return OnnxEmbedder(OnnxTextEncoder(export_folder(self.settings.index_dir), meta))
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

    def close(self) -> None:
        if self._owns_stores and self._stores is not None:
            self._stores.close()
            self._stores = None

    def __enter__(self) -> LocalIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
