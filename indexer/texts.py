"""The third phase: the text written in each picture (signs, menus, screenshots), read by OCR and
kept in the catalog, where the full-text index makes it searchable. Identical contents are read
once; a picture without text costs a detection pass only. Resumable: a picture is marked read
only once its text is stored, so a killed run reads the rest next time. The reader runs here, or
wherever the run's `Reading` sends the pictures (`index --ray`: on the cluster's workers,
`distributed_texts`); the texts are written here either way."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from imgsearch.progress import Progress
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.stores.writers import claimed

from .reader import AsDecoded, Decoded, Failed, read_all
from .reuse import Seen, reuse_by_content
from .scan import FoundFile

CHUNK = 8  # pictures stored together: a crash loses at most this much reading
CLAIM = 256  # pictures claimed at a time: what another writer cannot take from this one

Reading = Callable[[list[FoundFile]], Iterator[list[Seen]]]
"""Reads the text in `files`, a batch of results at a time, in order: here (`local_reading`) or
elsewhere."""


def read_pending(
    stores: Stores, reader: Any, workers: int, progress: Progress, *, limit: int = 10**9,
    cancel: Callable[[], bool] | None = None, reading: Reading | None = None,
) -> int:
    """Read the text of up to `limit` pictures not read yet, claimed `CLAIM` at a time (writers
    sharing the catalog share the work, `stores.writers`); `cancel` is polled between chunks
    (the service stops early when new files wait for vectors). `reading`: where the text is
    read (None: here, by `reader` with `workers` threads decoding; `reader.id` names the engine
    either way). Returns how many were done."""
    stores.catalog.adopt_text_reader(reader.id)
    total = min(limit, stores.catalog.waiting("text"))
    if not total:
        return 0
    progress.phase("text", total)
    reading = reading or local_reading(reader, workers)
    done = 0
    for todo in claimed(stores, stores.catalog.needs_text, limit, CLAIM, cancel):
        done += _read_chunk(todo, stores, reading, progress, cancel)
    return done


def _read_chunk(todo: list[FileInfo], stores: Stores, reading: Reading, progress: Progress,
                cancel: Callable[[], bool] | None) -> int:
    known = stores.catalog.text_of_sha({f.sha256 for f in todo if f.sha256})
    done, rest = reuse_by_content(todo, known, stores.catalog.set_texts, progress)
    ids = {f.path: f.id for f in rest}
    files = [FoundFile(path=Path(f.path), size=f.size, mtime_ns=0) for f in rest]
    read: dict[int, str | None] = {}
    for seen in reading(files):
        # a picture that could not be read has changed or gone since phase one: the next run sees it
        read.update({ids[s[0]]: s[1] for s in seen if not isinstance(s, Failed)})
        progress.advance(len(seen))
        if len(read) >= CHUNK:
            stores.catalog.set_texts(read)
            done += len(read)
            read = {}
            if cancel is not None and cancel():
                break
    stores.catalog.set_texts(read)
    return done + len(read)


def local_reading(reader: Any, workers: int) -> Reading:
    """Texts read here: `workers` threads decode, `reader` reads one picture at a time."""
    return lambda files: read_files(reader, files, workers)


def read_files(reader: Any, files: Sequence[FoundFile], workers: int) -> Iterator[list[Seen]]:
    """Read and decode `files` with the reader (`workers` threads) and read the text in each: one
    picture's result at a time. What the OCR reader does here and on a Ray worker alike."""
    for outcome in read_all(files, AsDecoded(reader.max_side), {}, workers):
        if isinstance(outcome, Failed):
            yield [outcome]
        else:
            assert isinstance(outcome, Decoded)
            yield [(str(outcome.found.path), reader.read(outcome.pixels))]
