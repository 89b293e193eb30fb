"""A query without rerank in a process that has loaded nothing: the words go through the text
encoder exported beside the index (`models.text_export`, run by onnxruntime), then the same
nearest-neighbour step as every query. No torch, no open_clip: a cold `imgsearch query
--no-rerank` answers in about a second instead of paying ~10 s of imports. Where no export of
the index's own CLIP is there, it says so (None) and the caller takes the full path."""

from __future__ import annotations

import logging

from imgsearch.models.onnx_text import OnnxTextEncoder
from imgsearch.models.profiles import model_facts, resolve_profile
from imgsearch.models.text_export import export_folder, read_meta
from imgsearch.settings import Settings
from imgsearch.stores import open_stores

from .hits import Hit, hit, nearest

log = logging.getLogger(__name__)


def query_without_torch(settings: Settings, text: str, *, limit: int = 10) -> list[Hit] | None:
    meta = read_meta(settings.index_dir)
    if meta is None:
        return None
    profile = resolve_profile(settings)
    if meta.get("clip_model") != profile.clip_id:
        return None
    try:
        vector = OnnxTextEncoder(export_folder(settings.index_dir), meta).encode([text])[0]
    except Exception as exc:  # a damaged export only costs speed: the full path still answers
        log.warning("The exported text encoder failed (%s); loading CLIP instead.", exc)
        return None
    with open_stores(settings, model_facts(profile), int(meta["dim"])) as stores:
        return [hit(info, score) for info, score in nearest(vector, stores, limit)]
