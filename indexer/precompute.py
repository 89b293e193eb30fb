"""`index --precompute-rerank`: fill the ITM vision-state cache ahead of queries, so the first
rerank of any picture costs only the cheap text pass."""

from __future__ import annotations

from collections.abc import Callable

from imgsearch.models import Models
from imgsearch.progress import NoProgress, Progress
from imgsearch.stores import Stores
from imgsearch.vision_states import open_state_cache, vision_states


def precompute_rerank(stores: Stores, models: Models, progress: Progress | None = None, chunk: int = 64,
                      cancel: Callable[[], bool] | None = None) -> bool:
    """True when every indexed picture's states are cached; False when `cancel` (polled between
    chunks, e.g. a service shutting down) stopped it first: the cache keeps what was done, and a
    later run does only the rest."""
    progress = progress or NoProgress()
    ids = sorted(stores.catalog.vector_ids())
    itm = models.itm
    if itm.vision is not None:
        itm.vision.expect(len(ids))  # a large run may build the faster vision tower first
    cache = open_state_cache(models.settings, itm)
    progress.phase("rerank cache", len(ids))
    for i in range(0, len(ids), chunk):
        if cancel is not None and cancel():
            progress.done()
            return False
        infos = list(stores.catalog.get(ids[i:i + chunk]).values())
        vision_states(infos, itm, cache, models.settings.decode_workers)
        progress.advance(len(infos))
    progress.done()
    return True
