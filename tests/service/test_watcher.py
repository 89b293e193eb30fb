"""A real watchdog observer on temporary folders: what reaches the worker, and when."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from imgsearch.service.watcher import ChangeCollector, Op, Watcher


@pytest.fixture
def watched(tmp_path: Path):
    root = tmp_path / "photos"
    root.mkdir()
    collector = ChangeCollector(debounce=0.2, settle=0.8, settle_open=3.0)
    watcher = Watcher(collector)
    watcher.start([root])
    yield root, collector
    watcher.stop()


def collect(collector: ChangeCollector, seconds: float, until: int | None = None) -> list[Op]:
    ops: list[Op] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ops += collector.ready()
        if until is not None and len(ops) >= until:
            break
        time.sleep(0.05)
    return ops


def test_copy_in_is_handed_on_once_complete(watched, tmp_path: Path) -> None:
    root, collector = watched
    src = tmp_path / "a.jpg"
    src.write_bytes(os.urandom(200_000))  # content does not matter to the watcher
    shutil.copy(src, root / "a.jpg")
    assert collect(collector, 5, until=1) == [Op("index", str(root / "a.jpg"))]


def test_slow_chunked_write_waits_for_the_close(watched) -> None:
    root, collector = watched
    target = root / "slow.jpg"
    handed: list[Op] = []
    with open(target, "wb") as f:
        for _ in range(4):  # pauses longer than `settle`: size alone would say "complete"
            f.write(os.urandom(50_000))
            f.flush()
            handed += collect(collector, 1.2)
    assert handed == [], "a file still open for writing was handed on"
    assert collect(collector, 5, until=1) == [Op("index", str(target))]


def test_move_in_rename_folder_move_out_and_delete(watched, tmp_path: Path) -> None:
    root, collector = watched
    outside = tmp_path / "outside"
    (outside / "album").mkdir(parents=True)
    (outside / "album" / "b.jpg").write_bytes(b"x" * 1000)
    (outside / "c.jpg").write_bytes(b"x" * 1000)
    shutil.move(str(outside / "c.jpg"), root / "c.jpg")  # a file moved in: one "created", no close
    shutil.move(str(outside / "album"), root / "album")  # a folder moved in: scan it
    ops = collect(collector, 5, until=3)
    assert {Op("index", str(root / "c.jpg")), Op("index", str(root / "album"))} <= set(ops)
    # watchdog may also report the moved-in folder's files: harmless, the folder scan has them
    assert all(op.kind == "index" and op.path.startswith(str(root / "album")) for op in ops
               if op != Op("index", str(root / "c.jpg")))

    (root / "album").rename(root / "holiday")
    (root / "c.jpg").rename(root / "c2.jpg")
    ops = collect(collector, 3, until=2)
    assert Op("move", str(root / "album"), str(root / "holiday")) in ops
    assert Op("move", str(root / "c.jpg"), str(root / "c2.jpg")) in ops
    assert ops.index(Op("move", str(root / "album"), str(root / "holiday"))) == 0  # in event order

    shutil.move(str(root / "holiday"), outside / "gone")  # moved out of the tree: deleted
    (root / "c2.jpg").unlink()
    ops = collect(collector, 3, until=2)
    assert Op("forget", str(root / "holiday")) in ops and Op("forget", str(root / "c2.jpg")) in ops


def test_hidden_junk_and_unsupported_files_are_ignored(watched) -> None:
    root, collector = watched
    (root / ".hidden.jpg").write_bytes(b"x")
    (root / "notes.txt").write_bytes(b"x")
    (root / "@eaDir").mkdir()
    (root / "@eaDir" / "thumb.jpg").write_bytes(b"x")
    (root / "download.jpg.part").write_bytes(b"x" * 100)
    assert collect(collector, 1.5) == []
    (root / "download.jpg.part").rename(root / "download.jpg")  # the finished download
    assert collect(collector, 3, until=1) == [Op("index", str(root / "download.jpg"))]


def test_events_are_not_lost_while_the_worker_is_busy(watched) -> None:
    root, collector = watched
    def writer() -> None:
        for i in range(30):
            (root / f"{i:02}.jpg").write_bytes(b"x" * 500)

    t = threading.Thread(target=writer)
    t.start()
    t.join()
    ops = collect(collector, 6, until=30)
    assert sorted(op.path for op in ops) == sorted(str(root / f"{i:02}.jpg") for i in range(30))


def test_a_vanished_root_keeps_its_images(watched, tmp_path: Path) -> None:
    root, collector = watched
    (root / "a.jpg").write_bytes(b"x" * 100)
    assert collect(collector, 3, until=1) == [Op("index", str(root / "a.jpg"))]
    shutil.rmtree(root)  # as good as an unmounted drive, to the events
    assert all(op.path != str(root) for op in collect(collector, 1.5))
