"""The index folder holds what a library contains (paths, captions, thumbnails, the service's
secret and log): only its owner may read it. Folders are made 700 and files 600 (the process's
umask is narrowed once any store is opened: SQLite, Qdrant and the log create files of their own).
An index folder left readable by an older version is closed, and the files in it narrowed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def make_private(index_dir: Path) -> None:
    """Narrow this process's umask and make `index_dir` (and its parent, when this call creates
    it) private to the current user."""
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)
    index_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    index_dir.mkdir(mode=0o700, exist_ok=True)
    if stat.S_IMODE(index_dir.stat().st_mode) & 0o077:
        _narrow(index_dir)


def _narrow(top: Path) -> None:
    """Take group and other bits off everything under `top` (a folder of an older version)."""
    for folder, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
                if not stat.S_ISLNK(st.st_mode):
                    os.chmod(path, stat.S_IMODE(st.st_mode) & ~0o077)
            except OSError:
                pass
    os.chmod(top, 0o700)
