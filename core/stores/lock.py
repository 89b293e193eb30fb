"""One writer per data directory.

Qdrant Edge and SQLite allow one writing process. The writer (the service, or an `index` run
without one) holds an exclusive `flock` on `writer.lock` in the index folder for its lifetime;
the kernel drops it when the process dies, even by SIGKILL, so a stale lock never blocks. The
holder writes who it is into the lock file, so a refused second writer can say who holds it.

The lock is a file in the local index folder, so it guards one machine's data directory and
nothing more. With the catalog on PostgreSQL (`IMGSEARCH_CATALOG_URL`) and the vectors on a
Qdrant server (`IMGSEARCH_QDRANT_URL`), writers on other machines (or with another `--home`)
share the stores without sharing the lock; it is still taken, unchanged. What such concurrent
writers may do today (docs/scale-out.md):

- Safe: ids come from the database's sequence, so two writers never give two files one point
  id; each write is a transaction (PostgreSQL) or an acknowledged batch (Qdrant, `wait=True`);
  two writers embedding the same file write the same vector under the same id.
- A run begins with `indexer.repair`, which deletes points whose rows are not yet marked
  `has_vector`, except those of rows another writer has pending while its lease is fresh: its
  batch in flight (`stores.writers`). A writer killed mid-batch stops refreshing its lease, and
  a repair a minute later removes its leftovers like any crash's.
- Two writers inserting the same new path at the same moment: one batch fails on the unique
  path index (an error, not a duplicate row); run it again. Likewise two first runs creating
  the collection or recording the models at once.
- Writers whose roots overlap but who see different files there (other mounts, other times)
  remove each other's rows as deleted files. Give each writer its own roots.
- Writers with different captioners, OCR engines or tag vocabularies drop each other's
  captions, texts or tags each time they start (`Catalog.adopt_*`). Use the same models.
- `Stores.lock` orders the two stores' writes for readers in the same process only; a reader
  elsewhere may see a batch in one store and not yet in the other.

Distributed indexing (Ray) that hands disjoint shares of the files to workers, with one repair
at the start, is not built yet.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from types import TracebackType

from imgsearch.errors import StoreLockedError
from imgsearch.private import make_private

LOCK_NAME = "writer.lock"


class WriterLock:
    def __init__(self, folder: Path, role: str) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.role = role
        self._fd: int | None = None

    def acquire(self) -> WriterLock:
        make_private(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_holder(self.path)
            who = f"{holder.get('role', 'another imgsearch process')} (pid {holder.get('pid', '?')})"
            hint = ("Stop it first (imgsearch service stop), or let it do the work: imgsearch commands "
                    "go through a running service." if holder.get("role") == "service" else
                    "Wait for it to finish, or stop it.")
            raise StoreLockedError(f"the index in {self.path.parent} is being written by {who}. {hint}") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "role": self.role}).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def read_holder(path: Path) -> dict[str, object]:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
