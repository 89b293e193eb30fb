"""`imgsearch index` without a running service: this process takes the writer lock, opens the
stores and loads the models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imgsearch.models import Models
from imgsearch.models.text_export import (admission_prompts, ensure_text_export, ensure_text_int8, int8_due,
                                         is_current, read_meta)
from imgsearch.progress import NoProgress, Progress, reporting
from imgsearch.settings import Settings
from imgsearch.stores import open_stores, recorded_dim
from imgsearch.stores.lock import WriterLock

from .pipeline import IndexReport, ModelWork, index


def run_index(
    settings: Settings,
    paths: Sequence[Path],
    *,
    captions: bool = True,
    texts: bool = True,
    precompute_rerank: bool = False,
    progress: Progress | None = None,
    client: object = None,
    model_work: ModelWork = ModelWork(),
    holder: str = "imgsearch index",
) -> IndexReport:
    """Open the stores for these settings and index `paths` (the CLI's entry when no service
    runs). Holds the writer lock (`holder` names this writer to a refused second one);
    `model_work` says where the models run (here, or on a Ray cluster)."""
    models = Models(settings)
    with WriterLock(settings.index_dir, holder), reporting(progress or NoProgress()):
        # the size the catalog records: a run with nothing new to embed loads no model (and no torch)
        dim = recorded_dim(settings) or models.clip.dim
        with open_stores(settings, models.facts(), dim, client=client) as stores:
            report = index(paths, stores, models, captions=captions, texts=texts, progress=progress,
                           model_work=model_work)
            # cold `query --no-rerank` then needs no torch (the service, when it runs, answers instead)
            if not is_current(settings.index_dir, models.profile.clip_id):
                ensure_text_export(models.clip, settings.index_dir)
            text_int8(settings, models, stores.catalog.counts().with_vector)
            if precompute_rerank:
                from .precompute import precompute_rerank

                precompute_rerank(stores, models, progress)
            return report


def text_int8(settings: Settings, models: Models, pictures: int) -> None:
    """The text tower's int8 variant for faster queries, once an index of `pictures` is due one
    (`text_export.int8_due`); about 8 s once per export, with ONNX Runtime alone."""
    meta = read_meta(settings.index_dir)
    if meta is None or "int8" in meta or not int8_due(settings.image_runtime, pictures,
                                                      settings.image_export_min_pictures):
        return
    from imgsearch.tags import load_vocabulary

    vocabulary = load_vocabulary(Path(models.profile.tags)) if models.profile.tags else None
    ensure_text_int8(settings.index_dir, models.profile.clip_id, admission_prompts(vocabulary))
