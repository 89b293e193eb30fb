"""Bring catalog and vector store back in step after a crash.

Writes go catalog row (pending) -> vector upsert (same id) -> row marked `has_vector`, and
deletions go vector -> row, so a kill at any moment leaves at worst points without a marked row
or marked rows without points. Both are found here by comparing ids; rows left pending are
simply re-embedded by the run, under their old id, so nothing is ever stored twice.
"""

from __future__ import annotations

from imgsearch.stores import Stores


def repair(stores: Stores) -> int:
    """Returns how many entries needed mending."""
    marked = stores.catalog.vector_ids()
    if stores.vectors.count() == len(marked):
        return 0
    present = stores.vectors.all_ids()
    orphans = sorted(present - marked)
    missing = sorted(marked - present)
    if orphans:
        stores.vectors.delete(orphans)
        stores.vectors.flush()
    if missing:
        stores.catalog.mark_vectors(missing, False)
    return len(orphans) + len(missing)
