"""Several writers on one catalog and vector store (PostgreSQL and a Qdrant server shared by
`index` runs, services or Ray jobs on several machines), each known to the others by a lease: a
row in `writers` it refreshes every `LEASE_S / 4` seconds while it runs and removes when it stops.
Rows it puts pending carry its id, so another writer's crash repair (`indexer.repair`) leaves
that batch's points alone while the lease is fresh; a writer killed mid-batch stops refreshing,
and once `LEASE_S` has passed its leftovers are repaired like any crash's. The later phases
(captions, text, tags) claim their rows a chunk at a time under the lease (`claim`), so writers
share that work.

Times are the catalog's clock, never a writer's own (`Catalog._clock`): every refresh is stamped
and every lease judged by the database server, so writers whose clocks differ by minutes still
agree on who is alive. A killed writer's row is dropped by the next writer to start once it is
`FORGET_LEASES` leases old; to the others a dropped lease is a lapsed one (its rows are repaired,
its claims free), and a writer that was only stalled that long takes its lease again at its next
refresh. With SQLite there is one writer anyway (`WriterLock`), and the lease changes nothing."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from imgsearch.stores import Stores
from imgsearch.stores.catalog import Catalog, Claim

log = logging.getLogger(__name__)

LEASE_S = 60.0
FORGET_LEASES = 5  # a lease this many LEASE_S old is a killed writer's: the next one to start drops it


class WriterLease:
    def __init__(self, catalog: Catalog, name: str) -> None:
        self.catalog, self.name = catalog, name
        self.id = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._refresh, name="writer-lease", daemon=True)

    def acquire(self) -> WriterLease:
        self.catalog.add_writer(self.id, self.name, forget_s=FORGET_LEASES * LEASE_S)
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        try:
            self.catalog.remove_writer(self.id)
        except Exception as e:  # the lease then lapses by itself
            log.warning("could not remove writer %s from the catalog: %s", self.id, e)

    def __enter__(self) -> WriterLease:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _refresh(self) -> None:
        while not self._stop.wait(LEASE_S / 4):
            try:
                if not self.catalog.refresh_writer(self.id, self.name):
                    log.warning("writer %s was not seen for %.0f s: its lease was dropped and starts again",
                                self.id, FORGET_LEASES * LEASE_S)
            except Exception as e:  # a database that blinks: the next refresh may get through
                log.warning("could not refresh writer %s: %s", self.id, e)


@contextmanager
def writing(stores: Stores, name: str) -> Iterator[Stores]:
    """`stores` with a writer's lease for the duration, unless they already have one (a
    service holds one for its lifetime)."""
    if stores.writer is not None:
        yield stores
        return
    with WriterLease(stores.catalog, name) as lease:
        stores.writer = lease.id
        try:
            yield stores
        finally:
            stores.writer = None


def claim(stores: Stores) -> Claim | None:
    """How this process asks for a later phase's work (`Catalog.needs_caption`): for itself, past
    any other live writer's claims; None without a lease (then it asks for everything)."""
    return None if stores.writer is None else Claim(stores.writer, LEASE_S)


def claimed(stores: Stores, needs: Callable[[int, int, Claim | None], list[Any]], limit: int, size: int,
            cancel: Callable[[], bool] | None = None) -> Iterator[list[Any]]:
    """A later phase's work in chunks of up to `size` rows (`needs`: `Catalog.needs_caption`,
    `needs_text` or `needs_tags`), each claimed for this writer and given back when the caller
    is done with it (finished or not: the next run takes up what is left); at most `limit` rows,
    and none more once `cancel` says stop. Failed rows are not asked for again: the chunks move on
    by id."""
    after, given = 0, 0
    while given < limit and not (cancel and cancel()):
        todo = needs(min(size, limit - given), after, claim(stores))
        if not todo:
            return
        ids = [row if isinstance(row, int) else row.id for row in todo]
        after, given = ids[-1], given + len(ids)
        try:
            yield todo
        finally:
            stores.catalog.release(ids, claim(stores))


def in_flight(stores: Stores) -> set[int]:
    """Rows other live writers have put pending: points of theirs that repair must leave. None
    on SQLite, whose one writer holds the `WriterLock`: another's lease there is a killed run's,
    however fresh (a run restarted at once repairs its leftovers at once)."""
    if stores.catalog.engine.dialect.name == "sqlite":
        return set()
    return stores.catalog.in_flight(LEASE_S, other_than=stores.writer)
