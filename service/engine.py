"""What the service holds while it runs: the local index over warm models and the open stores,
behind one lock, and what the background worker is doing. The HTTP routes and the worker both go
through it.

Queries and indexing run on different threads at once; every call into the stores takes one lock
(`_Locked`), so a query is never blocked for a whole indexing batch, only for one store call."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from typing import Any

from imgsearch.errors import ImgsearchError
from imgsearch.library.local import LocalIndex
from imgsearch.models import Models
from imgsearch.searcher import Hit
from imgsearch.searcher.request import INDEXED, SearchRequest, Term
from imgsearch.settings import Settings
from imgsearch.status import status_of
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo


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
    note: str | None = None  # a one-off wait within the phase (`Progress.note`)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class ActivityProgress:
    """The library's Progress protocol, recorded into an Activity."""

    def __init__(self, activity: Activity) -> None:
        self.activity = activity

    def phase(self, name: str, total: int | None) -> None:
        self.activity.state, self.activity.phase = name, name
        self.activity.done, self.activity.total = 0, total
        self.activity.note = None

    def advance(self, n: int = 1) -> None:
        self.activity.done += n

    def note(self, text: str | None) -> None:
        self.activity.note = text

    def done(self) -> None:
        pass


class Engine(LocalIndex):
    def __init__(self, settings: Settings, models: Models, stores: Stores) -> None:
        self._lock = threading.RLock()
        self.raw_stores = stores
        locked = Stores(_Locked(stores.catalog, self._lock), _Locked(stores.vectors, self._lock),  # type: ignore[arg-type]
                        lock=self._lock)
        super().__init__(settings, models, locked)
        self.activity = Activity()

    @property
    def stores(self) -> Stores:
        return self._stores

    def warm_up(self) -> None:
        """Load the rerank model now, so the first query with rerank pays no load (`Models` loads
        it once however many threads ask)."""
        self.models.itm

    def search(self, request: SearchRequest) -> list[Hit]:
        if request.rerank_k > 0 and request.positive_words:
            self.warm_up()
        return super().search(request)

    def similar(self, file_id: int, limit: int) -> list[Hit]:
        """Images nearest to an indexed image's own CLIP vector (itself first)."""
        self.image(file_id)
        return self.search(SearchRequest((Term(INDEXED, image_id=file_id),), limit=limit, rerank_k=0))

    def facets(self, roots: list[str]) -> dict[str, Any]:
        """What the page's filter row offers: the watched roots and the folders right below them,
        the cameras, each with how many indexed pictures it holds (exact counts from the vector
        engine's payload indexes)."""
        import os

        dirs = dict(self.stores.vectors.facets("dirs", limit=100_000))
        folders = [{"path": d, "count": n} for d, n in sorted(dirs.items()) if os.path.dirname(d) in roots]
        return {"roots": [{"path": r, "count": dirs.get(r, 0)} for r in roots], "folders": folders,
                "cameras": [{"name": c, "count": n} for c, n in self.stores.vectors.facets("camera", limit=200)]}

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
