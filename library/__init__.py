"""One interface to an index, however it is reached — as qdrant-client's `QdrantClient` picks a
local or a remote store: `open_index(settings)` gives a client of the running service when one
serves this data directory, else a local index over the stores themselves. Both take the same
`SearchRequest`, give the same `Hit`s (so the same JSON), report indexing the same way.

    with open_index(settings) as idx:
        hits = idx.search(SearchRequest((words("red bicycle"),), camera="canon"))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from imgsearch.progress import Progress
from imgsearch.searcher.hits import Hit
from imgsearch.searcher.request import SearchRequest
from imgsearch.settings import Settings


class Index(Protocol):
    def search(self, request: SearchRequest) -> list[Hit]:
        """Pictures answering the request, best first (or by date, as it asks)."""
        ...

    def index(self, paths: Sequence[Path], *, captions: bool = True, precompute_rerank: bool = False,
              progress: Progress | None = None) -> dict[str, Any]:
        """Bring the index in step with these folders; the report as JSON."""
        ...

    def status(self) -> dict[str, Any]:
        """What the index holds, what is pending and skipped, where it lives (JSON)."""
        ...

    def tags(self) -> dict[str, Any]:
        """The zero-shot tags in use, with how many pictures carry each (JSON)."""
        ...

    def concept_add(self, name: str, positives: Sequence[Any], negatives: Sequence[Any] = (), *,
                    random_negatives: int | None = None) -> Any:
        """Teach (or teach more of) a concept by example pictures (paths); a ConceptReport."""
        ...

    def concepts(self) -> list[Any]:
        """Every concept taught here (imgsearch.concepts.Concept), by name."""
        ...

    def concept(self, name: str) -> Any:
        """One concept; UnknownConceptError (or the service's 404) when there is none."""
        ...

    def concept_remove(self, name: str) -> None:
        ...

    def dupes(self, *, threshold: float | None = None, folders: Sequence[str] = (),
              progress: Progress | None = None) -> dict[str, Any]:
        """Groups of pictures that are the same photo (resized, recompressed, cropped copies), JSON."""
        ...

    def dupes(self, *, threshold: float | None = None, folders: Sequence[str] = (),
              progress: Progress | None = None) -> dict[str, Any]:
        """Groups of pictures that are the same photo, the one to keep first (JSON)."""
        ...

    def close(self) -> None:
        ...

    def __enter__(self) -> Index:
        ...

    def __exit__(self, *exc: object) -> None:
        ...


def open_index(settings: Settings) -> Index:
    """The running service's index when one serves these settings, else a local one. Cheap: the
    local index opens stores and loads models only when a call needs them."""
    from imgsearch.service.client import find_service

    service = find_service(settings)
    if service is not None:
        from .remote import RemoteIndex

        return RemoteIndex(service)
    from .local import LocalIndex

    return LocalIndex(settings)


__all__ = ["Index", "open_index"]
