"""The service's status reads the catalog and the vector store at one moment, even while the
worker writes (`status --json` once showed 659 images against 687 vectors during indexing)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from conftest import make_shapes
from imgsearch.indexer import index
from imgsearch.models import Models
from imgsearch.service.engine import Engine
from imgsearch.settings import Settings
from imgsearch.stores import Stores, open_stores


def test_status_never_shows_one_store_ahead_of_the_other(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, more = tmp_path / "first", tmp_path / "more"
    make_shapes(first, 4, seed=1)
    make_shapes(more, 12, seed=2)
    settings = Settings(home=tmp_path / "home", models="tiny", batch_size=4, decode_workers=1)
    models = Models(settings)
    with open_stores(settings, models.facts(), models.clip.dim) as stores:
        engine = Engine(settings, models, stores)
        index([first], engine.stores, models, captions=False)
        writer = threading.Thread(target=lambda: index([more], engine.stores, models, captions=False))
        read_counts = engine.raw_stores.catalog.counts

        def counts_while_the_worker_writes():  # type: ignore[no-untyped-def]
            counts = read_counts()
            writer.start()
            writer.join(timeout=5)  # the worker's whole run fits in here unless status holds it off
            return counts

        monkeypatch.setattr(engine.raw_stores.catalog, "counts", counts_while_the_worker_writes)
        during = engine.status()
        monkeypatch.undo()
        writer.join()
        after = engine.status()
    assert during["vectors"] == during["images"] - during["pending_vectors"] == 4
    assert after["vectors"] == after["images"] == 16 and after["pending_vectors"] == 0


class _CountingLock:
    """An RLock that knows whether it is held."""

    def __init__(self) -> None:
        self._lock, self.depth = threading.RLock(), 0

    def __enter__(self) -> None:
        self._lock.acquire()
        self.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.depth -= 1
        self._lock.release()


class _WritesUnderLock:
    """A store whose writes that pair with the other store's must come inside `lock`."""

    PAIRED = {"put_pending", "mark_vectors", "upsert", "delete", "record_skip"}

    def __init__(self, target: object, lock: _CountingLock, outside: list[str]) -> None:
        self._target, self._lock, self._outside = target, lock, outside

    def __getattr__(self, name: str) -> object:
        attr = getattr(self._target, name)
        if name in self.PAIRED and callable(attr):
            def call(*args: object, **kwargs: object) -> object:
                if self._lock.depth == 0:
                    self._outside.append(name)
                return attr(*args, **kwargs)
            return call
        return attr


def test_writes_that_touch_both_stores_hold_the_stores_lock(tmp_path: Path) -> None:
    """New, copied, broken and deleted files: each change reaches the catalog and the vectors
    inside `stores.lock`, so a reader holding it (status) sees the change wholly or not at all."""
    folder = tmp_path / "photos"
    make_shapes(folder, 6, seed=3)
    (folder / "scenes.json").unlink()
    settings = Settings(home=tmp_path / "home", models="tiny", batch_size=4, decode_workers=1)
    models = Models(settings)
    outside: list[str] = []
    with open_stores(settings, models.facts(), models.clip.dim) as raw:
        lock = _CountingLock()
        stores = Stores(_WritesUnderLock(raw.catalog, lock, outside),  # type: ignore[arg-type]
                        _WritesUnderLock(raw.vectors, lock, outside), lock=lock)  # type: ignore[arg-type]
        index([folder], stores, models, captions=False)
        pictures = sorted(folder.iterdir())
        shutil.copy(pictures[0], folder / "copy.png")  # a duplicate: the stored vector is copied
        pictures[1].write_bytes(b"now broken")  # had a vector, now skipped
        pictures[2].unlink()  # leaves the index
        report = index([folder], stores, models, captions=False)
        assert report.copied == 1 and len(report.skipped) == 1 and report.removed == 1
        assert raw.vectors.count() == raw.catalog.counts().with_vector == 5
    assert not outside, f"written outside stores.lock: {outside}"
