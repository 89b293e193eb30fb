"""A real watchdog observer on temporary folders: what reaches the worker, and when."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from imgsearch.indexer.pipeline import IndexReport
from imgsearch.service.watcher import ChangeCollector, Op, Watcher
from imgsearch.service.worker import Roots, Worker


@pytest.fixture
def watched(tmp_path: Path):
    root = tmp_path / "photos"
    root.mkdir()
    collector = ChangeCollector(debounce=0.2, settle=0.8, settle_open=3.0)
    watcher = Watcher(collector)
    watcher.start([root])
    yield root, collector
    watcher.stop()


def collect(collector: ChangeCollector, seconds: float, until: int | None = None,
            wanted: set[Op] | None = None) -> list[Op]:
    """What is handed on within `seconds`, or until `until` ops or all the `wanted` ones came."""
    ops: list[Op] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ops += collector.ready()
        if until is not None and len(ops) >= until or wanted is not None and wanted <= set(ops):
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
    ops = collect(collector, 3, wanted={Op("move", str(root / "album"), str(root / "holiday")),
                                        Op("move", str(root / "c.jpg"), str(root / "c2.jpg"))})
    assert Op("move", str(root / "album"), str(root / "holiday")) in ops
    assert Op("move", str(root / "c.jpg"), str(root / "c2.jpg")) in ops
    assert ops.index(Op("move", str(root / "album"), str(root / "holiday"))) == 0  # in event order

    shutil.move(str(root / "holiday"), outside / "gone")  # moved out of the tree: deleted
    (root / "c2.jpg").unlink()
    ops = collect(collector, 3, until=2)
    assert Op("forget", str(root / "holiday")) in ops and Op("forget", str(root / "c2.jpg")) in ops



def test_a_file_renamed_before_it_was_handed_on_still_leaves_its_old_name(watched) -> None:
    """Rewritten, then renamed before the worker saw the rewrite: its old name may be indexed
    (with the old content), so that entry must move too, not only the pending new content."""
    root, collector = watched
    (root / "a.jpg").write_bytes(b"x" * 100)
    assert collect(collector, 3, until=1) == [Op("index", str(root / "a.jpg"))]
    (root / "a.jpg").write_bytes(b"y" * 100)
    (root / "a.jpg").rename(root / "b.jpg")
    assert collect(collector, 3, until=2) == [Op("move", str(root / "a.jpg"), str(root / "b.jpg")),
                                              Op("index", str(root / "b.jpg"))]


def test_files_pending_in_a_folder_moved_out_are_not_waited_for(tmp_path: Path) -> None:
    """A folder leaves the tree with files not yet handed on: nothing is left waiting (a service
    that never gets idle), and a folder renamed inside the tree takes its pending files along."""
    root = tmp_path / "photos"
    root.mkdir()
    collector = ChangeCollector(debounce=0.2, settle=0.8, settle_open=60.0)  # no giving up for lack of news
    watcher = Watcher(collector)
    watcher.start([root])
    try:
        (root / "album").mkdir()
        (root / "trip").mkdir()
        time.sleep(0.5)  # the new folders' watches are in place (a loaded machine adds them late)
        (root / "album" / "a.jpg").write_bytes(b"x" * 100)
        (root / "trip" / "b.jpg").write_bytes(b"x" * 100)
        shutil.move(str(root / "album"), tmp_path / "album")
        (root / "trip").rename(root / "holiday")
        wanted = {Op("forget", str(root / "album")), Op("index", str(root / "holiday" / "b.jpg"))}
        ops = collect(collector, 30, wanted=wanted)
        ops += collect(collector, 1)  # anything that would follow
        assert wanted <= set(ops), ops
        # (watchdog may report the renamed folder's files as created too: the same file, once more)
        assert {op for op in ops if op.kind == "index" and op.path.endswith(".jpg")} == {
            Op("index", str(root / "holiday" / "b.jpg"))}
        assert collector.waiting() == 0
    finally:
        watcher.stop()

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



def test_a_permission_change_is_handed_on(watched) -> None:
    """A file skipped as unreadable is read again once made readable (`chmod` gives only an
    attribute event), not at the next hourly rescan."""
    root, collector = watched
    target = root / "locked.jpg"
    target.write_bytes(b"x" * 100)
    assert collect(collector, 3, until=1) == [Op("index", str(target))]
    target.chmod(0o644)
    assert collect(collector, 4, until=1) == [Op("index", str(target))]

# --- a root that dies and comes back: deleted and re-created, moved away, (un)mounted ----------
def _revived(watcher: Watcher, seconds: float = 10.0) -> list[Path]:
    """What `revive` re-arms within `seconds` (the worker asks every second or two)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        back = watcher.revive()
        if back:
            return back
        time.sleep(0.1)
    return []


@pytest.mark.parametrize("polling", [False, True], ids=["native", "polling"])
def test_a_root_deleted_and_recreated_is_watched_again(tmp_path: Path, polling: bool) -> None:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    collector = ChangeCollector(debounce=0.2, settle=0.5)
    watcher = Watcher(collector, polling=polling, poll_interval=0.3)
    watcher.start([root])
    try:
        assert watcher.revive() == [], "a healthy watch is left alone"
        shutil.rmtree(root)
        collect(collector, 1.5)  # the files' deletions, whatever the observer reports
        assert watcher.revive() == [], "nothing to watch while the folder is gone"
        root.mkdir()
        assert _revived(watcher) == [root]
        assert watcher.revive() == []
        (root / "new.jpg").write_bytes(b"x" * 100)
        assert collect(collector, 5, until=1) == [Op("index", str(root / "new.jpg"))]
    finally:
        watcher.stop()


def test_a_root_moved_away_is_not_followed_and_its_successor_is_watched(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    collector = ChangeCollector(debounce=0.2, settle=0.5)
    watcher = Watcher(collector)
    watcher.start([root])
    try:
        root.rename(tmp_path / "old")  # inotify follows the inode: events would name the wrong place
        time.sleep(0.3)
        watcher.revive()
        (tmp_path / "old" / "stray.jpg").write_bytes(b"x" * 100)
        assert collect(collector, 1.5) == []
        root.mkdir()  # another folder in its place (a re-mounted drive looks the same)
        assert _revived(watcher) == [root]
        (root / "new.jpg").write_bytes(b"x" * 100)
        assert collect(collector, 5, until=1) == [Op("index", str(root / "new.jpg"))]
    finally:
        watcher.stop()


def test_a_root_missing_at_start_is_watched_once_it_appears(tmp_path: Path) -> None:
    root = tmp_path / "drive" / "photos"  # e.g. a drive not mounted when the service started
    collector = ChangeCollector(debounce=0.2, settle=0.5)
    watcher = Watcher(collector)
    watcher.start([root])
    try:
        assert watcher.revive() == []
        root.mkdir(parents=True)
        assert _revived(watcher) == [root]
        (root / "new.jpg").write_bytes(b"x" * 100)
        assert collect(collector, 5, until=1) == [Op("index", str(root / "new.jpg"))]
    finally:
        watcher.stop()


def test_an_index_job_rearms_the_watch_of_a_known_root(tmp_path: Path) -> None:
    """`imgsearch index ROOT` through the service watches ROOT again at once, known or not."""
    root = tmp_path / "photos"
    root.mkdir()
    collector = ChangeCollector(debounce=0.2, settle=0.5)
    watcher = Watcher(collector)
    watcher.start([root])
    activity = SimpleNamespace(state="idle", phase=None, queued=0)
    worker = Worker(SimpleNamespace(activity=activity), Roots(tmp_path, [root]), collector, watcher,
                    captions=False, texts=False,
                    recheck_seconds=1e9)  # the periodic check must not be what re-arms it
    worker._last_scan = time.monotonic()  # nor a rescan
    indexed: list[list[Path]] = []
    worker._index = lambda paths, state: indexed.append(paths) or IndexReport()  # type: ignore[method-assign]
    try:
        shutil.rmtree(root)
        root.mkdir()
        time.sleep(0.3)
        job = worker.submit([str(root)])
        while worker._step():
            pass
        assert job.state == "done" and indexed == [[root]]
        (root / "new.jpg").write_bytes(b"x" * 100)
        assert collect(collector, 5, until=1) == [Op("index", str(root / "new.jpg"))]
    finally:
        watcher.stop()


def test_the_worker_indexes_a_root_back_with_files_and_spares_an_empty_one(tmp_path: Path) -> None:
    """Every `recheck_seconds` the worker re-arms roots that are back and indexes them; an empty
    folder in a root's place (a mount point, its drive unmounted) is watched, its images kept."""
    root = tmp_path / "photos"
    root.mkdir()
    collector = ChangeCollector(debounce=0.2, settle=0.5)
    watcher = Watcher(collector)
    watcher.start([root])
    activity = SimpleNamespace(state="idle", phase=None, queued=0)
    worker = Worker(SimpleNamespace(activity=activity), Roots(tmp_path, [root]), collector, watcher,
                    captions=False, texts=False, recheck_seconds=0.0)
    worker._last_scan = time.monotonic()
    indexed: list[list[Path]] = []
    worker._index = lambda paths, state: indexed.append(paths) or IndexReport()  # type: ignore[method-assign]
    revived: list[Path] = []
    revive = watcher.revive
    watcher.revive = lambda: revived.extend(back := revive()) or back  # type: ignore[method-assign]

    def until_revived() -> None:
        end = time.monotonic() + 10
        while time.monotonic() < end and not revived:
            worker._step()
            time.sleep(0.1)
        assert revived == [root]
        revived.clear()

    try:
        root.rmdir()
        root.mkdir()
        until_revived()
        assert indexed == []
        root.rmdir()
        root.mkdir()
        (root / "a.jpg").write_bytes(b"x" * 100)
        until_revived()
        assert indexed == [[root]]
    finally:
        watcher.stop()


def test_the_hourly_rescan_spares_an_empty_root_that_still_has_images(tmp_path: Path) -> None:
    """A root found empty by a rescan while the catalog still holds its images is most likely an
    unmounted drive: it is left out of the scan (its images stay); a root with files is scanned,
    and so is an empty one with nothing indexed."""
    drive, other, fresh = tmp_path / "drive", tmp_path / "other", tmp_path / "fresh"
    for folder in (drive, other, fresh):
        folder.mkdir()
    (other / "a.jpg").write_bytes(b"x" * 100)
    held = {str(drive): {1: True}, str(other): {2: True}}
    catalog = SimpleNamespace(ids_under=lambda path: held.get(path, {}), content_hashes=set)
    engine = SimpleNamespace(activity=SimpleNamespace(state="idle", phase=None, queued=0),
                             stores=SimpleNamespace(catalog=catalog), settings=SimpleNamespace(index_dir=tmp_path))
    worker = Worker(engine, Roots(tmp_path, [drive, other, fresh]), ChangeCollector(), Watcher(ChangeCollector()),
                    captions=False, texts=False)
    scanned: list[list[Path]] = []
    worker._index = lambda paths, state: scanned.append(paths) or IndexReport()  # type: ignore[method-assign]
    worker._scan()
    assert scanned == [[other, fresh]]
