"""Searching: CLIP text -> Qdrant nearest neighbours -> BLIP ITM rerank."""

from __future__ import annotations

from imgsearch.models import Models
from imgsearch.settings import Settings
from imgsearch.stores import open_stores

from .search import Hit, search


def run_query(
    settings: Settings, text: str, *, limit: int = 10, rerank_k: int = 20, fusion: str = "itm+clip",
    client: object = None,
) -> list[Hit]:
    models = Models(settings)
    clip = models.clip
    with open_stores(settings, models.facts(), clip.dim, client=client) as stores:
        return search(text, stores, models, limit=limit, rerank_k=rerank_k, fusion=fusion)


__all__ = ["Hit", "run_query", "search"]
