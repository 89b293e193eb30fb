"""File-system events in, a debounced list of index operations out.

What inotify reports (measured): a `cp` gives `created` while the file is a fraction of its size,
then `modified`..., then `closed` (IN_CLOSE_WRITE); a `mv` from elsewhere gives one `created` of
a complete file; a rename inside the tree gives `moved`; a `mv` out gives `deleted`. So a new
file is handed on once it is complete: after its `closed` and a short quiet time; with no
`closed` (a file moved in; polling observers; network mounts), once its size and mtime stayed
the same for `settle` seconds; one that was being written and never closed waits `settle_open`.
Moves and deletions go out in the order they happened.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from imgsearch.imaging import SUPPORTED_SUFFIXES
from imgsearch.indexer.scan import JUNK_DIR_PREFIXES, JUNK_DIRS

log = logging.getLogger("imgsearch.watch")


@dataclass(frozen=True)
class Op:
    kind: str  # "index" (file or folder), "forget", "move"
    path: str
    dest: str | None = None


@dataclass
class _Pending:
    last_event: float
    last_change: float
    signature: tuple[int, int] | None = None
    written: bool = False
    closed: bool = False


@dataclass(eq=False)  # watchdog keeps handlers in sets
class ChangeCollector(FileSystemEventHandler):
    roots: set[str] = field(default_factory=set)  # hidden/junk names are judged below a root only
    ignore: tuple[str, ...] = ()  # folders whose events are never ours to index (the data dir)
    debounce: float = 0.5
    settle: float = 1.5
    settle_open: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _pending: dict[str, _Pending] = field(default_factory=dict)
    _ops: list[tuple[float, Op]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- watchdog side -------------------------------------------------------------------------
    def on_any_event(self, event: FileSystemEvent) -> None:
        kind, is_dir = event.event_type, event.is_directory
        src = os.fsdecode(event.src_path)
        dest = os.fsdecode(event.dest_path) if event.dest_path else None
        now = self.clock()
        with self._lock:
            if src in self.roots and kind in ("deleted", "moved"):
                # A root vanishing is more often an unmounted drive than a deletion: keep its
                # images, as `index` does; the next rescan reports the root as missing.
                log.warning("watched folder %s is gone (unmounted?); its images stay indexed", src)
            elif kind == "moved" and dest is not None:
                self._moved(src, dest, is_dir, now)
            elif kind == "deleted":
                self._pending.pop(src, None)
                if self._wanted(src, is_dir):
                    self._ops.append((now, Op("forget", src)))
            elif is_dir:
                if kind == "created" and self._wanted(src, True):
                    self._ops.append((now, Op("index", src)))  # a folder moved in: scan it
            elif kind in ("created", "modified", "closed") and self._wanted(src, False):
                p = self._pending.setdefault(src, _Pending(now, now))
                p.last_event = now
                if kind == "modified":
                    p.written, p.closed, p.last_change = True, False, now
                elif kind == "closed":
                    p.closed = True
            # "opened" and "closed_no_write" are our own reads among others: never work to do

    def _moved(self, src: str, dest: str, is_dir: bool, now: float) -> None:
        src_ok, dest_ok = self._wanted(src, is_dir), self._wanted(dest, is_dir)
        pending = None if is_dir else self._pending.pop(src, None)
        if pending is not None and dest_ok:
            self._pending[dest] = pending  # still being written, or not yet handed on
        elif src_ok and dest_ok:
            self._ops.append((now, Op("move", src, dest)))
        elif src_ok:
            self._ops.append((now, Op("forget", src)))  # renamed to something we do not index
        elif dest_ok:
            if is_dir:
                self._ops.append((now, Op("index", dest)))
            else:  # e.g. "photo.jpg.part" -> "photo.jpg": a rename is atomic, the file is complete
                self._pending[dest] = _Pending(now, now, written=True, closed=True)

    def _wanted(self, path: str, is_dir: bool) -> bool:
        if any(path == d or path.startswith(d + os.sep) for d in self.ignore):
            return False
        root = next((r for r in self.roots if path == r or path.startswith(r.rstrip(os.sep) + os.sep)), None)
        if root is None:
            return False
        parts = Path(path).relative_to(root).parts or ("",)
        for name in parts[:-1] if not is_dir else parts:
            folded = name.casefold()
            if name.startswith(".") or folded in JUNK_DIRS or folded.startswith(JUNK_DIR_PREFIXES):
                return False
        if is_dir:
            return True
        name = os.path.basename(path)
        return not name.startswith(".") and os.path.splitext(name)[1].lower() in SUPPORTED_SUFFIXES

    # --- worker side ---------------------------------------------------------------------------
    def ready(self) -> list[Op]:
        """Operations due now, in order: moves, deletions and new folders first (cheap, and a
        file's index op must see its folder's move), then files that are complete."""
        now = self.clock()
        out: list[Op] = []
        with self._lock:
            while self._ops and now - self._ops[0][0] >= self.debounce:
                out.append(self._ops.pop(0)[1])
            for path, p in list(self._pending.items()):
                if self._complete(path, p, now):
                    del self._pending[path]
                    out.append(Op("index", path))
        return out

    def _complete(self, path: str, p: _Pending, now: float) -> bool:
        if now - p.last_event < self.debounce:
            return False
        if p.closed:
            return True
        try:
            st = os.stat(path)
        except OSError:
            return False  # gone or unreadable; its deletion event follows
        signature = (st.st_size, st.st_mtime_ns)
        if signature != p.signature:
            p.signature, p.last_change = signature, now
            return False
        return now - p.last_change >= (self.settle_open if p.written else self.settle)

    def waiting(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._ops)


class Watcher:
    """Observers over the roots: inotify (or the platform's) by default, polling on request or
    where inotify has no watches left (ENOSPC: raise fs.inotify.max_user_watches)."""

    def __init__(self, handler: ChangeCollector, polling: bool = False, poll_interval: float = 2.0) -> None:
        self.handler = handler
        self.native = None if polling else Observer()
        self.polling = PollingObserver(timeout=poll_interval)
        self.watched: set[str] = set()

    def start(self, roots: Iterable[Path]) -> None:
        if self.native is not None:
            self.native.start()
        self.polling.start()
        for root in roots:
            self.add(root)

    def add(self, root: Path) -> None:
        path = str(root)
        if path in self.watched or not os.path.isdir(path):
            return
        self.watched.add(path)
        self.handler.roots.add(path)
        if self.native is not None:
            try:
                self.native.schedule(self.handler, path, recursive=True)
                return
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                log.warning("no inotify watches left for %s (%s); polling it instead", path, e)
        self.polling.schedule(self.handler, path, recursive=True)

    def stop(self) -> None:
        for obs in (self.native, self.polling):
            if obs is not None:
                obs.stop()
        for obs in (self.native, self.polling):
            if obs is not None and obs.is_alive():
                obs.join(timeout=5)
