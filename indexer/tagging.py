"""The tag phase: zero-shot tags (imgsearch.tags) for every picture not tagged yet, from the
vectors already stored — no picture is read, one matrix product per batch. A picture embedded by
an index run is tagged with its vectors (`pipeline`); this phase is for the rest: copies given a
stored vector, a run killed between the two, and every picture when the vocabulary changes (the
catalog then forgets their tags). Resumable: a batch's tags are stored together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgsearch.progress import Progress
from imgsearch.stores import Stores
from imgsearch.stores.writers import claimed

BATCH = 1024


def tag_pending(stores: Stores, tagger: Any, progress: Progress, *, limit: int = 10**9,
                cancel: Callable[[], bool] | None = None) -> int:
    """Tag up to `limit` pictures, claimed a batch at a time (writers sharing the catalog share
    the work, `stores.writers`); returns how many were tagged."""
    stores.catalog.adopt_tagger(tagger.id)
    done = 0
    started = False
    for ids in claimed(stores, stores.catalog.needs_tags, limit, BATCH, cancel):
        if not started:
            progress.phase("tags", min(limit, max(len(ids), stores.catalog.waiting("tags"))))
            started = True
        stored = stores.vectors.get_vectors(ids)
        # a row whose point is missing (a crash between the two stores) is left to repair; the
        # run moves on past it
        have = [i for i in ids if i in stored]
        stores.catalog.set_tags(dict(zip(have, tagger.tag([stored[i] for i in have]))) if have else {})
        progress.advance(len(ids))
        done += len(have)
    if started:
        progress.done()
    return done
