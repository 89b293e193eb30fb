"""`imgsearch.indexer.scan.scan` on real trees in tmp_path: what it lists, what it skips, and that
loops, vanishing files and unreadable folders neither hang nor stop it."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from imgsearch.indexer import scan as scan_module
from imgsearch.indexer.scan import JUNK_DIRS, FoundFile, ScanProblem, scan


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _found(results: Iterable[FoundFile | ScanProblem]) -> list[Path]:
    return [r.path for r in results if isinstance(r, FoundFile)]


def _problems(results: Iterable[FoundFile | ScanProblem]) -> list[ScanProblem]:
    return [r for r in results if isinstance(r, ScanProblem)]


def test_nested_folders_sorted_and_stat(tmp_path: Path) -> None:
    a = _touch(tmp_path / "b" / "a.jpg", b"12345")
    c = _touch(tmp_path / "a" / "deep" / "er" / "c.png")
    d = _touch(tmp_path / "a" / "d.webp")
    e = _touch(tmp_path / "z.gif")
    results = list(scan([tmp_path]))
    assert not _problems(results)
    assert _found(results) == [e, d, c, a]  # files of a folder, then its sorted subfolders
    first = next(r for r in results if isinstance(r, FoundFile) and r.path == a)
    assert first.size == 5 and first.mtime_ns == a.stat().st_mtime_ns
    assert all(p.is_absolute() for p in _found(results))
    assert list(scan([tmp_path])) == results  # reproducible


def test_suffixes_case_insensitive_and_unsupported_ignored(tmp_path: Path) -> None:
    keep = [_touch(tmp_path / n) for n in ("A.JPG", "b.Jpeg", "c.JPE", "d.PnG", "e.TIFF", "f.bmp", "g.tif")]
    for n in ("notes.txt", "movie.mp4", "doc.pdf", "noext", "x.jpg.bak", "jpg"):
        _touch(tmp_path / n)
    assert _found(scan([tmp_path])) == sorted(keep)


def test_hidden_and_junk_skipped(tmp_path: Path) -> None:
    keep = _touch(tmp_path / "photos" / "keep.jpg")
    _touch(tmp_path / ".hidden.jpg")
    _touch(tmp_path / ".hidden_dir" / "x.jpg")
    _touch(tmp_path / "photos" / ".cache" / "x.jpg")
    junk = ["node_modules", "@eaDir", "__pycache__", "$RECYCLE.BIN", "System Volume Information",
            ".git", ".Trash-1000", ".Trashes", "lost+found", "#recycle", ".thumbnails"]
    for name in junk:
        _touch(tmp_path / "photos" / name / "x.jpg")
    _touch(tmp_path / "photos" / "@EADIR" / "y.jpg")  # junk names match case-insensitively
    assert _found(scan([tmp_path])) == [keep]
    assert "node_modules" in JUNK_DIRS


def test_symlink_loop_terminates_and_lists_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    one = _touch(root / "one.jpg")
    two = _touch(root / "sub" / "two.jpg")
    (root / "sub" / "loop").symlink_to(root, target_is_directory=True)  # sub/loop -> its parent
    (root / "sub" / "self").symlink_to(root / "sub", target_is_directory=True)
    results = list(scan([root]))
    assert _found(results) == [one, two]
    assert not _problems(results)


def test_file_reached_twice_reported_under_first_path(tmp_path: Path) -> None:
    real = _touch(tmp_path / "a" / "photo.jpg")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "alias.jpg").symlink_to(real)
    os.link(real, tmp_path / "b" / "hard.jpg")
    (tmp_path / "c").symlink_to(tmp_path / "a", target_is_directory=True)
    assert _found(scan([tmp_path, tmp_path / "a", real])) == [real]


def test_directory_symlink_followed(tmp_path: Path) -> None:
    outside = _touch(tmp_path / "elsewhere" / "x.png")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside.parent, target_is_directory=True)
    assert _found(scan([root])) == [root / "link" / "x.png"]  # path as reached, not resolved


def test_broken_symlinks_reported(tmp_path: Path) -> None:
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (tmp_path / "Holidays").symlink_to(tmp_path / "unmounted")
    (tmp_path / "gone.txt").symlink_to(tmp_path / "missing.txt")  # not ours: silent
    problems = _problems(scan([tmp_path]))
    assert [(p.path.name, p.reason) for p in problems] == [
        ("Holidays", "broken symlink"),
        ("gone.jpg", "broken symlink"),
    ]


def test_self_symlink_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "me.jpg").symlink_to(tmp_path / "me.jpg")
    keep = _touch(tmp_path / "ok.jpg")
    results = list(scan([tmp_path]))
    assert _found(results) == [keep]
    assert [p.path.name for p in _problems(results)] == ["me.jpg"]


def test_unreadable_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keep = _touch(tmp_path / "a" / "ok.jpg")
    locked = tmp_path / "b_locked"
    _touch(locked / "secret.jpg")
    after = _touch(tmp_path / "c" / "later.jpg")
    real_scandir = os.scandir

    def scandir(path: str | os.PathLike[str]) -> object:
        if Path(path) == locked:  # tests run as root, where chmod 000 would not stop reading
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(scan_module.os, "scandir", scandir)
    results = list(scan([tmp_path]))
    assert _found(results) == [keep, after]  # the scan goes on past it
    assert _problems(results) == [ScanProblem(locked, "permission denied")]


def test_file_vanishing_between_listing_and_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doomed = _touch(tmp_path / "a.jpg")
    keep = _touch(tmp_path / "b.jpg")
    real_scandir = os.scandir

    class Listing:
        """Lists the folder, then deletes a file before the scanner stats it."""

        def __init__(self, path: str | os.PathLike[str]) -> None:
            with real_scandir(path) as it:
                self.entries = list(it)
            if Path(path) == tmp_path:
                doomed.unlink()

        def __enter__(self) -> list[os.DirEntry[str]]:
            return self.entries

        def __exit__(self, *exc: object) -> None:
            return None

    monkeypatch.setattr(scan_module.os, "scandir", Listing)
    results = list(scan([tmp_path]))
    assert _found(results) == [keep]
    assert _problems(results) == [ScanProblem(doomed, "vanished during scan")]


def test_roots(tmp_path: Path) -> None:
    photo = _touch(tmp_path / "single.JPG")
    text = _touch(tmp_path / "notes.txt")
    missing = tmp_path / "nope"
    results = list(scan([missing, photo, text]))
    assert _found(results) == [photo]
    problems = _problems(results)
    assert [p.path for p in problems] == [missing, text]
    assert problems[0].reason == "does not exist"
    assert all(p.reason and "\n" not in p.reason for p in problems)


def test_relative_root_gives_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    photo = _touch(tmp_path / "pics" / "x.bmp")
    monkeypatch.chdir(tmp_path)
    assert _found(scan([Path("pics")])) == [photo]


def test_fifo_named_like_an_image_is_not_read(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.jpg")
    assert _problems(scan([tmp_path])) == [ScanProblem(tmp_path / "pipe.jpg", "not a regular file")]
