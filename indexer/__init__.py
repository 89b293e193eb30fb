"""Indexing: scan folders, embed with CLIP into the vector store, caption with BLIP. Importing
this package imports no torch (`index`, `IndexReport` and `run_index` load on first use), so the
cold query path can upgrade an old index (`backfill`) without it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import IndexReport, index
    from .runner import run_index


def __getattr__(name: str) -> Any:
    if name in ("IndexReport", "index"):
        from . import pipeline

        return getattr(pipeline, name)
    if name == "run_index":
        from .runner import run_index

        return run_index
    raise AttributeError(name)


__all__ = ["IndexReport", "index", "run_index"]
