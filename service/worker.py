"""The service's one writer thread: it applies file-system changes, runs index jobs asked for
over the API, rescans the roots now and then, watches again the roots whose watch died (deleted
and re-created, re-mounted) and writes captions when nothing else waits.

Order of priority: changes and jobs (new vectors make new files searchable) before captions;
captions go in small chunks that stop as soon as other work arrives."""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imgsearch.errors import ImgsearchError
from imgsearch.indexer import index
from imgsearch.indexer.captions import caption_pending
from imgsearch.indexer.changes import forget, relocate
from imgsearch.indexer.pipeline import IndexReport, normalise_roots
from imgsearch.indexer.precompute import precompute_rerank
from imgsearch.indexer.runner import text_int8
from imgsearch.indexer.tagging import BATCH, tag_pending
from imgsearch.indexer.texts import read_pending
from imgsearch.models.text_export import ensure_text_export, is_current
from imgsearch.progress import reporting

from .engine import ActivityProgress, Engine
from .thumbnails import THUMBNAILS, prune
from .watcher import ChangeCollector, Op, Watcher

log = logging.getLogger("imgsearch.worker")
ROOTS_FILE = "roots.json"


@dataclass
class Job:
    id: int
    paths: list[str]
    captions: bool
    precompute_rerank: bool = False  # then fill the ITM rerank cache, as `index --precompute-rerank` does
    state: str = "queued"  # queued | running | done | failed | cancelled
    report: dict[str, Any] | None = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class Roots:
    """The watched folders, kept in the index folder so a restarted service watches them again.
    Each folder is kept once, however it was spelled (`a/`, `a/b/..`): every restart of `watch a`
    hands `a` over again, and a root listed twice would be watched and scanned twice."""

    def __init__(self, folder: Path, extra: list[Path]) -> None:
        self.file = folder / ROOTS_FILE
        try:
            saved = [Path(p) for p in json.loads(self.file.read_text())]
        except (OSError, ValueError):
            saved = []
        self.paths: list[Path] = list(dict.fromkeys(normalise_roots([*saved, *extra])))
        if self.paths != saved:  # new roots, or a file written by a version that kept duplicates
            self._save()

    def add(self, paths: list[Path]) -> list[Path]:
        """Remember folders not yet known; returns those that were new."""
        new = [p for p in dict.fromkeys(normalise_roots(paths)) if p not in self.paths]
        if new:
            self.paths.extend(new)
            self._save()
        return new

    def _save(self) -> None:
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps([str(p) for p in self.paths], indent=1))
        os.replace(tmp, self.file)


class Worker(threading.Thread):
    def __init__(
        self, engine: Engine, roots: Roots, collector: ChangeCollector, watcher: Watcher, *,
        rescan_seconds: float = 3600.0, captions: bool = True, texts: bool = True, caption_chunk: int = 32,
        recheck_seconds: float = 2.0,
    ) -> None:
        super().__init__(name="imgsearch-worker", daemon=True)
        self.engine, self.roots, self.collector, self.watcher = engine, roots, collector, watcher
        self.rescan_seconds, self.captions, self.caption_chunk = rescan_seconds, captions, caption_chunk
        self.texts = texts  # read the text in pictures (OCR) when nothing else waits
        self.recheck_seconds = recheck_seconds  # how often the roots' watches are checked (a stat each)
        self.jobs: dict[int, Job] = {}
        self._queue: queue.Queue[Job] = queue.Queue()
        self._ids = itertools.count(1)
        self._halt = threading.Event()
        self._captions_due = True
        self._texts_due = True
        self._tags_due = False  # index runs tag what they embed; this is for what one left
        self._query_towers_due = True  # CLIP's text export and its int8 variant (`_prepare_query_towers`)
        self._last_scan = 0.0
        self._last_check = time.monotonic()

    # --- asked by the API ------------------------------------------------------------------------
    def submit(self, paths: list[str], captions: bool = True, precompute_rerank: bool = False) -> Job:
        job = Job(next(self._ids), [str(p) for p in normalise_roots([Path(p) for p in paths])], captions,
                  precompute_rerank)
        self.jobs[job.id] = job
        self._queue.put(job)
        return job

    def stop(self) -> None:
        self._halt.set()

    def should_stop(self) -> bool:
        return self._halt.is_set()

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        self._scan()  # what changed while the service was down
        while not self._halt.is_set():
            try:
                with reporting(ActivityProgress(self.engine.activity)):  # a build's wait shows on the page
                    stepped = self._step()
                if not stepped:
                    self._halt.wait(0.2)
            except Exception:  # one bad event or file must not end the service
                log.exception("worker step failed; going on")
                self._halt.wait(1.0)
        for job in self.jobs.values():
            if job.state == "queued":
                job.state, job.error = "cancelled", "the service stopped"

    def _step(self) -> bool:
        """One unit of work; False when there was nothing to do."""
        self.engine.activity.queued = self.collector.waiting() + self._queue.qsize()
        if self._rewatch():
            return True
        ops = self.collector.ready()
        if ops:
            self._apply(ops)
            return True
        try:
            job = self._queue.get_nowait()
        except queue.Empty:
            job = None
        if job is not None:
            self._run_job(job)
            return True
        if time.monotonic() - self._last_scan >= self.rescan_seconds:
            self._scan()
            return True
        if self._tags_due:
            return self._tag_some()
        if self.captions and self._captions_due:
            return self._caption_some()
        if self.texts and self._texts_due:
            return self._read_some()
        if self._query_towers_due:
            return self._prepare_query_towers()
        self.engine.activity.state, self.engine.activity.phase, self.engine.activity.note = "idle", None, None
        return False

    def _busy(self) -> bool:
        """Polled between batches: stop early for shutdown; captions also yield to new work."""
        return self._halt.is_set()

    def _yield_captions(self) -> bool:
        return self._halt.is_set() or self.collector.waiting() > 0 or not self._queue.empty()

    def _index(self, paths: list[Path], state: str) -> IndexReport:
        self.engine.activity.state = state
        report = index(paths, self.engine.stores, self.engine.models, captions=False,
                       progress=ActivityProgress(self.engine.activity), cancel=self._busy)
        self.engine.activity.state = state
        if report.embedded or report.copied or report.moved:
            self._captions_due = self._texts_due = True
        if report.embedded:
            self._query_towers_due = True  # the index may now be large enough for the int8 variant
        # a batch is tagged with its vectors; what a run left (copies, a cancelled run) waits for
        # a quiet moment
        self._tags_due = bool(self.engine.stores.catalog.needs_tags(1))
        return report

    def _scan(self) -> None:
        self._last_scan = time.monotonic()
        # An empty root that still has images indexed is most likely a mount point whose drive is
        # unmounted: its images stay (as for a missing root) until it has files again.
        roots = [r for r in self.roots.paths if not (_empty(r) and self.engine.stores.catalog.ids_under(str(r)))]
        for root in set(self.roots.paths) - set(roots):
            log.warning("watched folder %s is empty (an unmounted drive?); its images stay indexed", root)
        if roots:
            report = self._index(roots, "scanning")
            log.info("scan: %d seen, %d embedded, %d moved, %d removed, %d skipped", report.seen,
                     report.embedded, report.moved, report.removed, len(report.skipped))
            if not report.cancelled:
                gone = prune(self.engine.settings.index_dir / THUMBNAILS, self.engine.stores.catalog.content_hashes())
                if gone:
                    log.info("removed %d thumbnail(s) of images no longer indexed", gone)

    def _rewatch(self) -> bool:
        """Roots back after their watch died: watch them again, then index them (whatever came
        while they were not watched raised no event). An empty folder is watched but not indexed:
        it may be a mount point with its drive unmounted, whose images stay (as for a missing
        root). False when there was nothing to do."""
        if time.monotonic() - self._last_check < self.recheck_seconds:
            return False
        self._last_check = time.monotonic()
        back = self.watcher.revive()
        if not back:
            return False
        full = [r for r in back if not _empty(r)]
        for root in back:
            log.info("watching %s again (re-created or re-mounted)%s", root,
                     "; indexing it" if root in full else "; empty, its images stay")
        if full:
            report = self._index(full, "scanning")
            log.info("%s: %d seen, %d embedded, %d moved, %d removed, %d skipped", ", ".join(map(str, full)),
                     report.seen, report.embedded, report.moved, report.removed, len(report.skipped))
        return True

    def _apply(self, ops: list[Op]) -> None:
        stores = self.engine.stores
        self.engine.activity.state = "events"
        to_index: list[Path] = []
        for op in ops:
            if op.kind == "forget":
                n = forget(stores, op.path)
                if n:
                    log.info("removed %d image(s) under %s", n, op.path)
            elif op.kind == "move":
                assert op.dest is not None
                if relocate(stores, op.path, op.dest):
                    log.info("moved %s -> %s", op.path, op.dest)
                else:
                    to_index.append(Path(op.dest))  # not indexed under its old name: new to us
            else:
                to_index.append(Path(op.path))
        if to_index:
            report = self._index(to_index, "events")
            if report.embedded or report.skipped or report.copied:
                log.info("events: %d file(s) embedded, %d copied, %d skipped", report.embedded, report.copied,
                         len(report.skipped))

    def _run_job(self, job: Job) -> None:
        job.state = "running"
        try:
            paths = [Path(p) for p in job.paths]
            folders = [p for p in paths if p.is_dir()]
            self.roots.add(folders)
            for root in folders:  # known or new: a root whose watch died is watched again
                if self.watcher.add(root):
                    log.info("watching %s", root)
            report = self._index(paths, "vectors")
            cancelled = report.cancelled
            if job.precompute_rerank and not cancelled:
                self.engine.activity.state = "rerank cache"
                cancelled = not precompute_rerank(self.engine.stores, self.engine.models,
                                                  ActivityProgress(self.engine.activity), cancel=self._busy)
            job.report = report.as_json()
            job.state = "cancelled" if cancelled else "done"
        except ImgsearchError as e:
            job.state, job.error = "failed", str(e)
        except Exception as e:
            log.exception("index job %d failed", job.id)
            job.state, job.error = "failed", f"{type(e).__name__}: {e}"

    def _caption_some(self) -> bool:
        self.engine.activity.state = "captions"
        done = caption_pending(self.engine.stores, self.engine.models, self.engine.settings.decode_workers,
                               ActivityProgress(self.engine.activity), limit=self.caption_chunk,
                               cancel=self._yield_captions)
        if done == 0:
            self._captions_due = False
        return done > 0


    def _tag_some(self) -> bool:
        """What an index run left untagged (copies, a cancelled run); nothing to do: no activity shown."""
        if not self.engine.stores.catalog.needs_tags(1):
            self._tags_due = False
            return False
        self.engine.activity.state = "tags"
        done = tag_pending(self.engine.stores, self.engine.models.tagger, ActivityProgress(self.engine.activity),
                           limit=10 * BATCH, cancel=self._yield_captions)
        if done == 0:
            self._tags_due = False
        return done > 0

    def _prepare_query_towers(self) -> bool:
        """In spare time, what `imgsearch index` leaves for fast queries: CLIP's text export (the
        service's own warm queries, and cold CLI queries once it stops, embed words through it)
        and its int8 variant where the index is large enough (`runner.text_int8`). On a CPU only:
        a GPU embeds words faster than onnxruntime on the CPU."""
        self._query_towers_due = False
        try:
            settings, models = self.engine.settings, self.engine.models
            pictures = self.engine.stores.catalog.counts().with_vector
            if not pictures or models.runtime.device.type != "cpu":
                return False
            self.engine.activity.state = "query towers"
            if not is_current(settings.index_dir, models.profile.clip_id):
                ensure_text_export(models.clip, settings.index_dir)
            text_int8(settings, models, pictures)
        except Exception as exc:  # only speed is lost: queries embed their words as before
            log.warning("could not prepare the text tower for fast queries (%s)", exc)
            return False
        return True

    def _read_some(self) -> bool:
        self.engine.activity.state = "text"
        done = read_pending(self.engine.stores, self.engine.models.text_reader, self.engine.settings.decode_workers,
                            ActivityProgress(self.engine.activity), limit=self.caption_chunk,
                            cancel=self._yield_captions)
        if done == 0:
            self._texts_due = False
        return done > 0


def _empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return True  # gone again: nothing to index
