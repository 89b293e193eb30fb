"""Searching: a `SearchRequest` (words, pictures, filters, order, page) → CLIP vectors → the
nearest pictures in Qdrant that pass the filters → BLIP ITM rerank of the top K. Importing this
package imports no torch: `search` is loaded on first use, so the cold words-only path stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .hits import Hit

if TYPE_CHECKING:
    from .query import search


def __getattr__(name: str) -> Any:
    if name == "search":
        from .query import search

        return search
    raise AttributeError(name)


__all__ = ["Hit", "search"]
