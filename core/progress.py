"""How long work reports progress without printing: the CLI passes a reporter that draws bars,
the library only calls it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class Progress(Protocol):
    def phase(self, name: str, total: int | None) -> None: ...
    def advance(self, n: int = 1) -> None: ...
    def note(self, text: str | None) -> None:
        """A one-off wait within the work, in words (None: it is over): a bar that would stand
        still for a minute says why."""
        ...
    def done(self) -> None: ...


class NoProgress:
    def phase(self, name: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str | None) -> None:
        pass

    def done(self) -> None:
        pass


# The progress that one-off waits deep inside the models are said on: a tower's faster variant is
# built (exported, quantized, checked: 10 s to a minute and more) at the first picture that needs
# it, far from the run that holds the progress. A context variable, so the service's query threads
# (which may build too) never write into an index run's progress.
_listener: ContextVar[Progress | None] = ContextVar("imgsearch_progress", default=None)


@contextmanager
def reporting(progress: Progress) -> Iterator[None]:
    """While this runs (in this thread), `waiting` says its waits on `progress`."""
    token = _listener.set(progress)
    try:
        yield
    finally:
        _listener.reset(token)


@contextmanager
def waiting(text: str) -> Iterator[None]:
    """A one-off wait, said on the progress of the run that causes it (`reporting`), if any."""
    progress = _listener.get()
    if progress is None:
        yield
        return
    progress.note(text)
    try:
        yield
    finally:
        progress.note(None)
