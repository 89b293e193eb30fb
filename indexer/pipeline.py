"""`imgsearch index`: bring the index in step with folders.

Phase one gives every new or changed image a CLIP vector (search works as soon as it ends);
moved, renamed and duplicate files are recognised by content hash and get the stored vector and
caption without any model work; files that left the folders leave the index. Every point's
payload names its folders, date and camera (`vectors.point_payload`) for filtered searches; a move
rewrites it, and an index made before payloads carried them is backfilled first (`backfill`).
Phase two writes captions. Broken files are skipped with a reason kept in the catalog; the run goes on. A file
skipped for a reason of the moment (no permission, see `reader.retry_later`) is read again by the
next run; one broken in its content only once it changes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from imgsearch.dates import epoch, picture_date
from imgsearch.models import Models
from imgsearch.progress import NoProgress, Progress, reporting
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo, KnownFile, NewFile
from imgsearch.stores.vectors import point_payload
from imgsearch.stores.writers import writing

from .backfill import backfill
from .captions import Captioning, caption_pending
from .tagging import tag_pending
from .texts import Reading, read_pending
from .reader import CHANGING, VANISHED, Decoded, Failed, Reused, read_all, retry_later
from .repair import repair
from .scan import FoundFile, ScanProblem, scan


@dataclass
class IndexReport:
    seen: int = 0
    embedded: int = 0
    unchanged: int = 0
    moved: int = 0
    copied: int = 0  # duplicates and touched files that reused a stored vector
    removed: int = 0
    captioned: int = 0
    texts_read: int = 0
    tagged: int = 0
    repaired: int = 0
    backfilled: int = 0  # rows of an older index given their date, camera and payload (no model work)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False  # stopped early (service shutdown); the next run finishes the work
    search_index_built: bool = False  # enough unindexed vectors piled up to build HNSW over them

    def as_json(self) -> dict[str, object]:
        d = asdict(self)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        d["problems"] = [{"path": p, "reason": r} for p, r in self.problems]
        return d


def normalise_roots(roots: Sequence[Path]) -> list[Path]:
    return [Path(os.path.abspath(os.path.expanduser(r))) for r in roots]


class IndexRun:
    """One index run's state and its writes, shared by every vectors phase (`local_vectors` here,
    the Ray cluster's in `distributed`): whoever computes the vectors, they are stored one way."""

    def __init__(self, stores: Stores, models: Models, progress: Progress, report: IndexReport,
                 roots: list[Path], known: dict[str, KnownFile], gone_by_sha: dict[str, KnownFile],
                 reusable: dict[str, FileInfo], cancelled: Callable[[], bool]) -> None:
        self.stores, self.models, self.progress, self.report = stores, models, progress, report
        self.roots, self.known, self.gone_by_sha, self.reusable = roots, known, gone_by_sha, reusable
        self.cancelled = cancelled
        self.moved_ids: set[int] = set()

    def embed(self, batch: Sequence[Decoded]) -> np.ndarray:
        """The CLIP vectors of decoded pictures, on this machine."""
        import torch  # here, not above: a run with nothing new to embed imports no torch

        return self.models.clip.encode_pixels(torch.stack([d.pixels for d in batch]))

    def store(self, batch: Sequence[Decoded], vectors: np.ndarray) -> None:
        """Write new pictures with their vectors (one row of `vectors` each) and tags."""
        if not batch:
            return
        tags = self.models.tagger.tag(vectors)  # one matrix product: a picture is searchable by tag at once
        new = [_new_file(str(d.found.path), d.found.size, d.found.mtime_ns, d.sha256, d.width, d.height,
                         d.taken_at, d.camera) for d in batch]
        with self.stores.lock:  # a reader holding it sees the batch in both stores or in neither
            ids = self.stores.catalog.put_pending(new, self.stores.writer)
            self.stores.vectors.upsert(ids, vectors, [_payload(n) for n in new])
            self.stores.catalog.mark_vectors(ids)
            self.stores.catalog.set_tags(dict(zip(ids, tags)))
        self.report.embedded += len(ids)
        self.report.tagged += len(ids)
        self.progress.advance(len(ids))

    def skip(self, outcome: Failed) -> None:
        f = outcome.found
        # a file gone, or written while it was read, leaves the catalog as it was: its deletion or
        # its finished content is seen by its own event or the next scan
        if outcome.reason not in (VANISHED, CHANGING):
            with self.stores.lock:
                had_vector = self.stores.catalog.record_skip(str(f.path), f.size, f.mtime_ns, outcome.reason)
                if had_vector is not None:
                    self.stores.vectors.delete([had_vector])
        self.report.skipped.append((str(f.path), outcome.reason))
        self.progress.advance()

    def reuse(self, outcome: Reused) -> bool:
        """Give a file whose content is already indexed its stored vector. False when the stored
        vector could not be found (then the caller embeds it)."""
        f, sha, catalog = outcome.found, outcome.sha256, self.stores.catalog
        path = str(f.path)
        prev = self.known.get(path)
        if prev is not None and prev.sha256 == sha and prev.has_vector:
            self.relocate(prev.id, outcome)  # touched, same content: a file date follows the mtime
            self.report.unchanged += 1
        elif prev is None and sha in self.gone_by_sha:
            src = self.gone_by_sha.pop(sha)
            self.relocate(src.id, outcome)
            self.moved_ids.add(src.id)
            self.report.moved += 1
        else:
            src = outcome.source
            stored = self.stores.vectors.get_vectors([src.id])
            if src.id not in stored:
                return False
            new = _new_file(path, f.size, f.mtime_ns, sha, src.width, src.height, src.taken_at, src.camera,
                            src.caption)
            with self.stores.lock:
                ids = catalog.put_pending([new], self.stores.writer)
                self.stores.vectors.upsert(ids, np.stack([stored[src.id]]), [_payload(new)])
                catalog.mark_vectors(ids)
            self.report.copied += 1
        self.progress.advance()
        return True

    def relocate(self, file_id: int, outcome: Reused) -> None:
        """Point an indexed row (and its point's payload: `dirs`, a file date) at where and what
        the file now is. The payload goes first: a crash before the row moves leaves the file
        to be found moved again by the next run, never a row whose payload names old folders."""
        f, source = outcome.found, outcome.source  # same content as the row: same EXIF facts
        date, date_source = picture_date(source.taken_at, f.mtime_ns)
        payload = point_payload(str(f.path), outcome.sha256, epoch(date), source.camera)
        with self.stores.lock:
            self.stores.vectors.set_payload([file_id], [payload])
            self.stores.catalog.move(file_id, str(f.path), f.size, f.mtime_ns)
            self.stores.catalog.set_dates({file_id: (date, date_source, source.camera)})


def _new_file(path: str, size: int, mtime_ns: int, sha: str, width: int | None, height: int | None,
              taken_at: datetime | None, camera: str | None, caption: str | None = None) -> NewFile:
    date, date_source = picture_date(taken_at, mtime_ns)
    return NewFile(path, size, mtime_ns, sha, width, height, taken_at, caption, date, date_source, camera)


def _payload(f: NewFile) -> dict[str, Any]:
    return point_payload(f.path, f.sha256, None if f.date is None else epoch(f.date), f.camera)


VectorsPhase = Callable[[IndexRun, list[FoundFile]], None]
"""Gives each file of `work` its vector, a reused one or a skip, through the run's methods; has
stored all it computed when it returns, and stops early when `run.cancelled()` says so."""


class ClipInput:
    """CLIP's side of decoding (`reader.ModelInput`), asked of `clip` (a loader) only when a
    picture is decoded: a run whose files are all moves and copies of stored pictures loads no
    model. A load that failed is not tried again by every picture already queued."""

    def __init__(self, clip: Callable[[], Any]) -> None:
        self._load, self._failed = clip, None

    def _clip(self) -> Any:
        if self._failed is not None:
            raise self._failed
        try:
            return self._load()
        except Exception as exc:
            self._failed = exc
            raise

    @property
    def min_side(self) -> int:
        return int(self._clip().image_size)

    def prepare(self, image: Any) -> Any:
        return self._clip().preprocess(image)


def local_vectors(run: IndexRun, work: list[FoundFile]) -> None:
    """The vectors phase on this machine: `decode_workers` threads decode, CLIP embeds in batches."""
    clip, settings = ClipInput(lambda: run.models.clip), run.models.settings
    batch: list[Decoded] = []
    for outcome in read_all(work, clip, run.reusable, settings.decode_workers, ahead=2 * settings.batch_size):
        if isinstance(outcome, Reused):
            if run.reuse(outcome):
                continue
            outcome = next(read_all([outcome.found], clip, {}, 1))
        if isinstance(outcome, Failed):
            run.skip(outcome)
        else:
            batch.append(outcome)
            if len(batch) >= settings.batch_size:
                run.store(batch, run.embed(batch))
                batch = []
                if run.cancelled():
                    break
    if batch:
        run.store(batch, run.embed(batch))


@dataclass(frozen=True)
class ModelWork:
    """Where a run's model work is done: every phase here by default; `distributed` moves it to a
    Ray cluster. What the models give back is written by the run, here, either way."""

    vectors: VectorsPhase = local_vectors
    captioning: Captioning | None = None  # None: here (`captions.local_captioning`)
    reading: Reading | None = None  # None: here (`texts.local_reading`)


def index(
    roots: Sequence[Path],
    stores: Stores,
    models: Models,
    *,
    captions: bool = True,
    texts: bool = True,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    model_work: ModelWork = ModelWork(),
) -> IndexReport:
    """`cancel` is polled between batches: when it says stop, the batch in hand is finished and
    the run ends without removals or captions (a later run does them). `model_work` says where
    the models run (`distributed`: CLIP, the captioner and OCR on a Ray cluster); all else stays
    here. The run holds a writer's lease on the catalog (`stores.writers`), so writers elsewhere
    leave its batches be."""
    with writing(stores, "imgsearch index"), reporting(progress or NoProgress()):
        return _index(roots, stores, models, captions=captions, texts=texts, progress=progress, cancel=cancel,
                      model_work=model_work)


def _index(roots: Sequence[Path], stores: Stores, models: Models, *, captions: bool, texts: bool,
           progress: Progress | None, cancel: Callable[[], bool] | None,
           model_work: ModelWork) -> IndexReport:
    progress = progress or NoProgress()
    cancelled = cancel or (lambda: False)
    report = IndexReport()
    roots = normalise_roots(roots)
    report.repaired = repair(stores)
    report.backfilled = backfill(stores)
    stores.catalog.adopt_tagger(models.tagger.id)  # before new tags are written with it
    found: list[FoundFile] = []
    for item in scan(roots):
        if isinstance(item, ScanProblem):
            report.problems.append((str(item.path), item.reason))
        else:
            found.append(item)
    report.seen = len(found)
    known = stores.catalog.files_under([str(r) for r in roots])
    work = []
    for f in found:
        k = known.get(str(f.path))
        if k and k.size == f.size and k.mtime_ns == f.mtime_ns and (
                k.has_vector or (k.error and not retry_later(k.error))):
            report.unchanged += 1
        else:
            work.append(f)
    present = {str(f.path) for f in found}
    unreachable = [p for p, _ in report.problems]
    gone = {p: k for p, k in known.items() if p not in present and not _inside_any(p, unreachable)}
    gone_by_sha = {k.sha256: k for k in gone.values() if k.sha256 and k.has_vector}

    progress.phase("vectors", len(work))
    reusable = stores.catalog.reusable_by_sha()
    run = IndexRun(stores, models, progress, report, roots, known, gone_by_sha, reusable, cancelled)
    if work:  # else no model is loaded: a run that finds nothing new costs a scan, not CLIP's load
        models.expect_pictures(len(work))
        model_work.vectors(run, work)
    if cancelled():
        stores.vectors.flush()
        progress.done()
        report.cancelled = True
        return report

    leaving = [k for k in gone.values() if k.id not in run.moved_ids]
    if leaving:
        ids = [k.id for k in leaving]
        with stores.lock:
            stores.vectors.delete(ids)
            stores.vectors.flush()
            stores.catalog.delete(ids)
        report.removed = len(ids)
    stores.vectors.flush()
    progress.done()
    if stores.vectors.unindexed() >= models.settings.search_index_threshold:
        progress.phase("search index", None)
        stores.vectors.build_index()
        report.search_index_built = True
        progress.done()
    workers = models.settings.decode_workers
    report.tagged += tag_pending(stores, models.tagger, progress, cancel=cancel)
    if captions:
        report.captioned = caption_pending(stores, models, workers, progress, cancel=cancel,
                                           captioning=model_work.captioning)
        progress.done()
    if texts and models.settings.ocr:
        report.texts_read = read_pending(stores, models.text_reader, workers, progress, cancel=cancel,
                                         reading=model_work.reading)
        progress.done()
    return report


def _inside_any(path: str, folders: list[str]) -> bool:
    return any(path.startswith(d.rstrip("/") + "/") for d in folders)
