"""The third phase: the text written in each picture (signs, menus, screenshots), read by OCR and
kept in the catalog, where the full-text index makes it searchable. Identical contents are read
once; a picture without text costs a detection pass only. Resumable: a picture is marked read
only once its text is stored, so a killed run reads the rest next time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgsearch.progress import Progress
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.stores.writers import claimed

from .reader import Decoded, Failed, read_all
from .reuse import reuse_by_content
from .scan import FoundFile

CHUNK = 8  # pictures stored together: a crash loses at most this much reading
CLAIM = 256  # pictures claimed at a time: what another writer cannot take from this one


def read_pending(
    stores: Stores, reader: Any, workers: int, progress: Progress, *, limit: int = 10**9,
    cancel: Callable[[], bool] | None = None,
) -> int:
    """Read the text of up to `limit` pictures not read yet, claimed `CLAIM` at a time (writers
    sharing the catalog share the work, `stores.writers`); `cancel` is polled between chunks
    (the service stops early when new files wait for vectors). Returns how many were done."""
    stores.catalog.adopt_text_reader(reader.id)
    total = min(limit, stores.catalog.waiting("text"))
    if not total:
        return 0
    progress.phase("text", total)
    done = 0
    for todo in claimed(stores, stores.catalog.needs_text, limit, CLAIM, cancel):
        done += _read_chunk(todo, stores, reader, workers, progress, cancel)
    return done


def _read_chunk(todo: list[FileInfo], stores: Stores, reader: Any, workers: int, progress: Progress,
                cancel: Callable[[], bool] | None) -> int:
    known = stores.catalog.text_of_sha({f.sha256 for f in todo if f.sha256})
    done, rest = reuse_by_content(todo, known, stores.catalog.set_texts, progress)
    by_path = {f.path: f for f in rest}
    files = [FoundFile(path=Path(f.path), size=f.size, mtime_ns=0) for f in rest]
    read: dict[int, str | None] = {}
    for outcome in read_all(files, reader.max_side, lambda im: im, {}, workers):
        if isinstance(outcome, Failed):
            progress.advance()  # changed or gone since phase one: the next run sees it
            continue
        assert isinstance(outcome, Decoded)
        read[by_path[str(outcome.found.path)].id] = reader.read(outcome.pixels)
        progress.advance()
        if len(read) >= CHUNK:
            stores.catalog.set_texts(read)
            done += len(read)
            read = {}
            if cancel is not None and cancel():
                break
    stores.catalog.set_texts(read)
    return done + len(read)
