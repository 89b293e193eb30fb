"""Searching: CLIP text -> Qdrant nearest neighbours -> BLIP ITM rerank. Importing this package
imports no torch: `search` is loaded on first use, so `light` (the cold no-rerank path) stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imgsearch.settings import Settings

from .hits import Hit

if TYPE_CHECKING:
    from .query import search


def run_query(
    settings: Settings, text: str, *, limit: int = 10, rerank_k: int = 20, fusion: str = "itm+clip",
    client: object = None,
) -> list[Hit]:
    """A whole query in this process: CLIP (and BLIP to rerank) loaded here. It also leaves the
    exported text encoder behind when the index has none, so the next cold query is fast."""
    from imgsearch.models import Models
    from imgsearch.models.text_export import ensure_text_export
    from imgsearch.stores import open_stores

    from .query import search

    models = Models(settings)
    clip = models.clip
    with open_stores(settings, models.facts(), clip.dim, client=client) as stores:
        hits = search(text, stores, models, limit=limit, rerank_k=rerank_k, fusion=fusion)
    ensure_text_export(clip, settings.index_dir)
    return hits


def __getattr__(name: str) -> Any:
    if name == "search":
        from .query import search

        return search
    raise AttributeError(name)


__all__ = ["Hit", "run_query", "search"]
