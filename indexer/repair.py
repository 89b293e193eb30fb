"""Bring catalog and vector store back in step after a crash.

Writes go catalog row (pending) -> vector upsert (same id) -> row marked `has_vector`, and
deletions go vector -> row, so a kill at any moment leaves at worst points without a marked row
or marked rows without points. Both are found here by comparing ids; rows left pending are
simply re-embedded by the run, under their old id, so nothing is ever stored twice. Points of
rows another live writer has pending are its batch in flight, not leftovers: they stay
(`stores.writers`).
"""

from __future__ import annotations

from imgsearch.stores import Stores
from imgsearch.stores.writers import in_flight


def repair(stores: Stores) -> int:
    """Returns how many entries needed mending."""
    marked = stores.catalog.vector_ids()
    if stores.vectors.count() == len(marked):
        return 0
    present = stores.vectors.all_ids()
    unmarked = present - marked
    orphans = sorted(unmarked - in_flight(stores)) if unmarked else []
    missing = sorted(marked - present)
    if orphans:
        stores.vectors.delete(orphans)
        stores.vectors.flush()
    if missing:
        stores.catalog.mark_vectors(missing, False)
    return len(orphans) + len(missing)
