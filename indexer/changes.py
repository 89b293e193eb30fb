"""Changes the watch service learns from file-system events, applied without a scan: a file or
folder that left the index, or one that moved inside it (its rows keep their ids, so vectors and
captions stay without any model work; its points' payloads follow it to the new folders). New and
modified files go through `index()`."""

from __future__ import annotations

import os
from typing import Any

from imgsearch.dates import epoch
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.stores.vectors import BATCH, point_payload


def forget(stores: Stores, path: str) -> int:
    """Remove a file, or every file under a folder, from both stores (vectors first, so a crash
    in between leaves rows without points, which `repair` mends). Returns how many rows went."""
    rows = stores.catalog.ids_under(os.path.abspath(path))
    if not rows:
        return 0
    with_vector = [i for i, has in rows.items() if has]
    with stores.lock:  # both stores change together for a reader that holds it (status)
        if with_vector:
            stores.vectors.delete(with_vector)
            stores.vectors.flush()
        stores.catalog.delete(list(rows))
    return len(rows)


def relocate(stores: Stores, src: str, dest: str) -> int:
    """A file or folder renamed or moved inside the watched roots. Returns how many rows moved;
    0 means `src` was not indexed (the caller indexes `dest` as new).

    The moved points' payloads get their new folders (`dirs`, which folder filters read) before
    the rows move: a crash in between leaves rows at the old paths, which the next scan finds
    moved and mends, never rows at new paths whose points still name the old folders."""
    src, dest = os.path.abspath(src), os.path.abspath(dest)
    with stores.lock:
        rows = stores.catalog.ids_under(src)
        with_vector = sorted(i for i, has in rows.items() if has)
        for start in range(0, len(with_vector), BATCH):
            infos = stores.catalog.get(with_vector[start : start + BATCH])
            payloads = [_payload(f, _moved(f.path, src, dest)) for f in infos.values()]
            stores.vectors.set_payload(list(infos), payloads)
        if with_vector:
            stores.vectors.flush()
        moved, replaced = stores.catalog.move_under(src, dest)
        if replaced:
            stores.vectors.delete(replaced)
            stores.vectors.flush()
    return moved


def _moved(path: str, src: str, dest: str) -> str:
    """Where `catalog.move_under(src, dest)` puts the row at `path`."""
    return dest if path == src else dest.rstrip("/") + "/" + path[len(src.rstrip("/")) + 1 :]


def _payload(f: FileInfo, path: str) -> dict[str, Any]:
    return point_payload(path, f.sha256 or "", None if f.date is None else epoch(f.date), f.camera)
