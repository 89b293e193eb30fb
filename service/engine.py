"""What the service holds while it runs: settings, warm models, the open stores and what the
background worker is doing. The HTTP routes and the worker both go through it.

Queries and indexing run on different threads at once; every call into the stores takes one lock
(`_Locked`), so a query is never blocked for a whole indexing batch, only for one store call."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from imgsearch.errors import ImgsearchError
from imgsearch.models import Models
from imgsearch.settings import Settings
from imgsearch.status import status_of
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.searcher import Hit, search
from imgsearch.searcher.query import search_vector


class NotIndexedError(ImgsearchError):
    """An image id the catalog does not hold (the API answers 404)."""


class _Locked:
    """Every method call on the wrapped store holds the shared lock."""

    def __init__(self, target: Any, lock: threading.RLock) -> None:
        self._target, self._lock = target, lock

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if not callable(attr):
            return attr
        lock = self._lock

        def call(*args: Any, **kwargs: Any) -> Any:
            with lock:
                return attr(*args, **kwargs)

        return call


@dataclass
class Activity:
    """What the worker is doing, for /api/status and the CLI's progress."""

    state: str = "idle"  # idle | scanning | vectors | rerank cache | captions | events
    phase: str | None = None
    done: int = 0
    total: int | None = None
    queued: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class ActivityProgress:
    """The library's Progress protocol, recorded into an Activity."""

    def __init__(self, activity: Activity) -> None:
        self.activity = activity

    def phase(self, name: str, total: int | None) -> None:
        self.activity.state, self.activity.phase = name, name
        self.activity.done, self.activity.total = 0, total

    def advance(self, n: int = 1) -> None:
        self.activity.done += n

    def done(self) -> None:
        pass


class Engine:
    def __init__(self, settings: Settings, models: Models, stores: Stores) -> None:
        self.settings, self.models = settings, models
        self._lock = threading.RLock()
        self.raw_stores = stores
        self.stores = Stores(_Locked(stores.catalog, self._lock), _Locked(stores.vectors, self._lock),  # type: ignore[arg-type]
                             lock=self._lock)
        self.activity = Activity()

    def warm_up(self) -> None:
        """Load the rerank model now, so the first query with rerank pays no load (`Models` loads
        it once however many threads ask)."""
        self.models.itm

    def search(self, text: str, limit: int, rerank_k: int) -> list[Hit]:
        if rerank_k > 0:
            self.warm_up()
        return search(text, self.stores, self.models, limit=limit, rerank_k=rerank_k)

    def similar(self, file_id: int, limit: int) -> list[Hit]:
        """Images nearest to an indexed image's own CLIP vector (itself first)."""
        vector = self.stores.vectors.get_vectors([file_id]).get(file_id)
        if vector is None:
            raise NotIndexedError(f"image {file_id} is not indexed")
        return search_vector(np.asarray(vector), self.stores, self.models, limit=limit)

    def image(self, file_id: int) -> FileInfo:
        info = self.stores.catalog.info(file_id)
        if info is None:
            raise NotIndexedError(f"image {file_id} is not indexed")
        return info

    def status(self) -> dict[str, Any]:
        """Every count read at one moment: the worker writes a batch's rows and vectors under the
        same lock, so `vectors` never runs ahead of `images` (those still waiting for a vector are
        `pending_vectors`)."""
        with self._lock:
            d = status_of(self.settings, self.raw_stores.catalog, self.raw_stores.vectors).as_json()
        d["activity"] = self.activity.as_json()
        return d
