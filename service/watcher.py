"""File-system events in, a debounced list of index operations out.

What inotify reports (measured): a `cp` gives `created` while the file is a fraction of its size,
then `modified`..., then `closed` (IN_CLOSE_WRITE); a `mv` from elsewhere gives one `created` of
a complete file; a rename inside the tree gives `moved`; a `mv` out gives `deleted`. So a new
file is handed on once it is complete: after its `closed` and a short quiet time; with no
`closed` (a file moved in; polling observers; network mounts), once its size and mtime stayed
the same for `settle` seconds; one that was being written and never closed waits `settle_open`.
A `chmod` or `touch` (`attrib`) hands a file on too: one skipped as unreadable may be readable now.
Moves and deletions go out in the order they happened; a file not yet handed on follows its own
or its folder's move (its old name, maybe indexed with older content, moves too), and is dropped
when its folder leaves the tree or it is gone without a word for `settle_open`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch
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
    came_from: str | None = None  # its path before its folder moved (the file's own event may follow)


@dataclass(eq=False)  # watchdog keeps handlers in sets
class ChangeCollector(FileSystemEventHandler):
    roots: set[str] = field(default_factory=set)  # hidden/junk names are judged below a root only
    ignore: tuple[str, ...] = ()  # folders whose events are never ours to index (the data dir)
    debounce: float = 0.5
    settle: float = 1.5
    settle_open: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _gone: set[str] = field(default_factory=set)  # roots whose own deletion or move was reported
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
                # images, as `index` does. Its watch is over: `Watcher.revive` re-arms it once back.
                log.warning("watched folder %s is gone (unmounted?); its images stay indexed", src)
                self._gone.add(src)
                self._rebase_pending(src, None)
            elif kind == "moved" and dest is not None:
                self._moved(src, dest, is_dir, now)
            elif kind == "deleted":
                self._pending.pop(src, None)
                if is_dir:  # moved out of the tree: no event follows for the files inside
                    self._rebase_pending(src, None)
                if self._wanted(src, is_dir):
                    self._ops.append((now, Op("forget", src)))
            elif is_dir:
                if kind == "created" and self._wanted(src, True):
                    self._ops.append((now, Op("index", src)))  # a folder moved in: scan it
            elif kind in ("created", "modified", "closed", "attrib") and self._wanted(src, False):
                p = self._pending.setdefault(src, _Pending(now, now))
                p.last_event = now
                if kind == "modified":
                    p.written, p.closed, p.last_change = True, False, now
                elif kind == "closed":
                    p.closed = True
            # "attrib" (chmod, touch) may make a skipped file readable: read it once settled.
            # "opened" and "closed_no_write" are our own reads among others: never work to do

    def _moved(self, src: str, dest: str, is_dir: bool, now: float) -> None:
        src_ok, dest_ok = self._wanted(src, is_dir), self._wanted(dest, is_dir)
        if is_dir:  # the files inside may get their own moved events (inotify does), or not
            self._rebase_pending(src, dest if dest_ok else None)
        pending = None if is_dir else self._pending.pop(src, None)
        taken = None if is_dir else self._pending.get(dest)
        if pending is None and taken is not None and taken.came_from == src:
            return  # its folder's move took it along, still pending; the folder's rows move as one
        if pending is not None and dest_ok:
            self._pending[dest] = pending  # still being written, or not yet handed on
            if src_ok:  # and its old content may be indexed under its old name: that entry moves
                self._ops.append((now, Op("move", src, dest)))  # too, before the new content is read
                pending.last_event = now
        elif src_ok and dest_ok:
            self._ops.append((now, Op("move", src, dest)))
        elif src_ok:
            self._ops.append((now, Op("forget", src)))  # renamed to something we do not index
        elif dest_ok:
            if is_dir:
                self._ops.append((now, Op("index", dest)))
            else:  # e.g. "photo.jpg.part" -> "photo.jpg": a rename is atomic, the file is complete
                self._pending[dest] = _Pending(now, now, written=True, closed=True)

    def _rebase_pending(self, folder: str, dest: str | None) -> None:
        """Files not yet handed on under a folder that moved to `dest`, or left (None)."""
        prefix = folder + os.sep
        for path in [p for p in self._pending if p.startswith(prefix)]:
            pending = self._pending.pop(path)
            if dest is not None:
                pending.came_from = path
                self._pending[dest + path[len(folder):]] = pending

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
                complete = self._complete(path, p, now)
                if complete is not False:
                    del self._pending[path]
                if complete:
                    out.append(Op("index", path))
        return out

    def _complete(self, path: str, p: _Pending, now: float) -> bool | None:
        """True once the file can be read, False while it may still change, None when it is
        gone and no event came to say so (the kernel drops events when its queue overflows)."""
        if now - p.last_event < self.debounce:
            return False
        try:
            st = os.stat(path)
        except OSError:  # gone (moved on, or its folder did); the event saying so should follow
            return None if now - p.last_event >= self.settle_open else False
        if p.closed:
            return True
        signature = (st.st_size, st.st_mtime_ns)
        if signature != p.signature:
            p.signature, p.last_change = signature, now
            return False
        return now - p.last_change >= (self.settle_open if p.written else self.settle)

    def add_root(self, root: str) -> None:
        with self._lock:  # observer threads read the roots meanwhile
            self.roots.add(root)

    def take_gone(self) -> set[str]:
        """The roots reported deleted or moved since the last call (their watch is over)."""
        with self._lock:
            gone, self._gone = self._gone, set()
        return gone

    def waiting(self) -> int:
        with self._lock:
            return len(self._pending) + len(self._ops)


@dataclass(frozen=True)
class _Armed:
    observer: BaseObserver
    watch: ObservedWatch
    identity: tuple[int, int]  # (st_dev, st_ino) of the folder it was scheduled on


class Watcher:
    """Observers over the roots: inotify (or the platform's) by default, polling on request or
    where inotify has no watches left (ENOSPC: raise fs.inotify.max_user_watches).

    A root's watch can die under it, and watchdog does not say so: on a deleted root the inotify
    emitter (IN_DELETE_SELF) and the polling one (snapshot fails) report it and stop for good; a
    root moved away is followed by inode, so its events would name the wrong place; an unmounted
    drive leaves an emitter with no watches. `revive`, called regularly, finds such watches (the
    root's deletion event, a stopped emitter, or a folder other than the one scheduled) and
    watches a root again once a folder is back in its place, as it does a root missing at start."""

    def __init__(self, handler: ChangeCollector, polling: bool = False, poll_interval: float = 2.0) -> None:
        self.handler = handler
        self.native = None if polling else Observer()
        self.polling = PollingObserver(timeout=poll_interval)
        self.armed: dict[str, _Armed] = {}
        self.lost: set[str] = set()  # roots to watch as soon as they exist (again)
        self._refused: set[str] = set()  # roots that exist but could not be watched, already logged
        self._lock = threading.Lock()  # the worker re-arms while the main thread may stop
        self._stopped = False

    def start(self, roots: Iterable[Path]) -> None:
        if self.native is not None:
            self.native.start()
        self.polling.start()
        for root in roots:
            self.add(root)

    def add(self, root: Path) -> bool:
        """Watch `root`, or watch it again if its watch died; True when a watch was (re)armed."""
        path = str(root)
        with self._lock:
            if self._stopped:
                return False
            self.handler.add_root(path)
            armed = self.armed.get(path)
            if armed is not None and self._alive(path, armed):
                return False
            if self._arm(path):
                return True
            if not os.path.isdir(path):
                log.warning("%s is not there (an unmounted drive?); it is watched once it is", path)
            return False

    def revive(self) -> list[Path]:
        """Drop the watches that died; re-arm the roots that exist again. Returns those re-armed:
        what was added to them while they were not watched is the caller's to index."""
        with self._lock:
            if self._stopped:
                return []
            gone = self.handler.take_gone()
            for path, armed in list(self.armed.items()):
                if path in gone or not self._alive(path, armed):
                    self._disarm(path)
                    self.lost.add(path)
                    log.warning("the watch on %s ended (deleted, moved or unmounted); "
                                "it is watched again once the folder is back", path)
            return [Path(p) for p in sorted(self.lost) if os.path.isdir(p) and self._arm(p)]

    def _alive(self, path: str, armed: _Armed) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return False
        if (st.st_dev, st.st_ino) != armed.identity:
            return False
        if not armed.observer.is_alive():
            return True  # not started yet (or stopping): its emitters start with it
        return any(e.watch == armed.watch and e.is_alive() for e in list(armed.observer.emitters))

    def _arm(self, path: str) -> bool:
        """Schedule `path` afresh; False, and kept as lost, when no folder can be watched there."""
        self._disarm(path)
        self.lost.add(path)
        try:
            st = os.stat(path)
            if not stat.S_ISDIR(st.st_mode):
                return False
            observer, watch = self._schedule(path)
        except OSError as e:
            if os.path.isdir(path) and path not in self._refused:  # e.g. no permission: say it once
                self._refused.add(path)
                log.warning("cannot watch %s (%s); trying again now and then", path, e.strerror or e)
            return False  # else gone again since the stat
        self.armed[path] = _Armed(observer, watch, (st.st_dev, st.st_ino))
        self.lost.discard(path)
        self._refused.discard(path)
        return True

    def _schedule(self, path: str) -> tuple[BaseObserver, ObservedWatch]:
        if self.native is not None:
            try:
                return self.native, self.native.schedule(self.handler, path, recursive=True)
            except OSError as e:
                if e.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                log.warning("no inotify watches left for %s (%s); polling it instead", path, e)
        return self.polling, self.polling.schedule(self.handler, path, recursive=True)

    def _disarm(self, path: str) -> None:
        armed = self.armed.pop(path, None)
        if armed is not None:
            with contextlib.suppress(KeyError):  # already dropped by a stopping observer
                armed.observer.unschedule(armed.watch)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        for obs in (self.native, self.polling):
            if obs is not None:
                obs.stop()
        for obs in (self.native, self.polling):
            if obs is not None and obs.is_alive():
                obs.join(timeout=5)
