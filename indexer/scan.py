"""Walk photo folders and list the image files in them, fast (one `os.scandir` per directory and
one stat per candidate file) and without surprises: hidden and junk folders are skipped, symlink
loops end, a file reachable by two paths is listed once, and an unreadable corner is reported as
a `ScanProblem` instead of ending the scan. Names are visited in sorted order so two runs over
the same tree list the same files in the same order."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from imgsearch.imaging import SUPPORTED_SUFFIXES

# Folders that hold thumbnails, caches, trash or system files, never a user's photos (compared
# case-insensitively). Hidden names (".anything") are skipped as well.
JUNK_DIRS: frozenset[str] = frozenset(
    name.casefold()
    for name in (
        "node_modules",
        "@eaDir",  # Synology thumbnails
        "__pycache__",
        "$RECYCLE.BIN",
        "System Volume Information",
        ".git",
        "lost+found",
        "#recycle",  # Synology recycle bin
        ".thumbnails",
    )
)
JUNK_DIR_PREFIXES: tuple[str, ...] = (".trash",)  # casefolded too: .Trash, .Trashes, .Trash-1000


@dataclass(frozen=True)
class FoundFile:
    """An image file to index: its absolute path (symlinks kept as written) and what tells a
    changed file from an unchanged one."""

    path: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ScanProblem:
    """Something under the roots that could not be looked at, with a short reason for users."""

    path: Path
    reason: str


def scan(roots: Iterable[Path]) -> Iterator[FoundFile | ScanProblem]:
    """Every supported image file under `roots`, depth first, files of a folder before its
    subfolders. Directory symlinks are followed, but no directory or file is visited twice, even
    across roots. A root that is a file is listed when its type is supported."""
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    for root in roots:
        path = Path(root).absolute()
        try:
            st = os.stat(path)
        except FileNotFoundError:
            yield ScanProblem(path, "broken symlink" if os.path.islink(path) else "does not exist")
            continue
        except OSError as e:
            yield ScanProblem(path, _reason(e))
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(path, seen_dirs, seen_files)
        elif not _supported(path.name):
            yield ScanProblem(path, f"not a supported image type ({path.suffix or 'no suffix'})")
        else:
            yield from _file(path, st, seen_files)


def _walk(
    top: Path, seen_dirs: set[tuple[int, int]], seen_files: set[tuple[int, int]]
) -> Iterator[FoundFile | ScanProblem]:
    """Iterative depth-first walk (no recursion limit on deep trees)."""
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            st = os.stat(directory)
        except FileNotFoundError:
            yield ScanProblem(directory, "vanished during scan")
            continue
        except OSError as e:
            yield ScanProblem(directory, _reason(e))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            continue  # a symlink back into the tree, or a root inside another root
        seen_dirs.add(key)
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda entry: entry.name)
        except FileNotFoundError:
            yield ScanProblem(directory, "vanished during scan")
            continue
        except OSError as e:
            yield ScanProblem(directory, _reason(e))
            continue
        subdirs: list[Path] = []
        for entry in entries:
            name = entry.name
            if name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks; False for a broken one
            except OSError as e:  # e.g. a symlink pointing at itself
                yield ScanProblem(path, _reason(e))
                continue
            if is_dir:
                if not _junk(name):
                    subdirs.append(path)
            elif _supported(name):
                try:
                    st_file = entry.stat()
                except FileNotFoundError:
                    reason = "broken symlink" if entry.is_symlink() else "vanished during scan"
                    yield ScanProblem(path, reason)
                    continue
                except OSError as e:
                    yield ScanProblem(path, _reason(e))
                    continue
                yield from _file(path, st_file, seen_files)
            elif not os.path.splitext(name)[1] and entry.is_symlink() and not os.path.exists(path):
                yield ScanProblem(path, "broken symlink")  # maybe a folder on an unmounted drive
        stack.extend(reversed(subdirs))


def _file(
    path: Path, st: os.stat_result, seen_files: set[tuple[int, int]]
) -> Iterator[FoundFile | ScanProblem]:
    """One candidate file, unless it was already listed under another path (hard or symbolic
    link) or is not a regular file (a FIFO named .jpg would hang the reader)."""
    if not stat.S_ISREG(st.st_mode):
        yield ScanProblem(path, "not a regular file")
        return
    key = (st.st_dev, st.st_ino)
    if key in seen_files:
        return
    seen_files.add(key)
    yield FoundFile(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)


def _supported(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in SUPPORTED_SUFFIXES


def _junk(name: str) -> bool:
    folded = name.casefold()
    return folded in JUNK_DIRS or folded.startswith(JUNK_DIR_PREFIXES)


def _reason(e: OSError) -> str:
    """A short reason, without the path (the problem carries it)."""
    if isinstance(e, PermissionError):
        return "permission denied"
    if e.errno == errno.ELOOP:
        return "symlink loop"
    if isinstance(e, NotADirectoryError):
        return "not a directory"
    return (e.strerror or str(e) or type(e).__name__).lower()
