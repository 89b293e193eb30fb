"""Changes the watch service learns from file-system events, applied without a scan: a file or
folder that left the index, or one that moved inside it (its rows keep their ids, so vectors and
captions stay without any model work). New and modified files go through `index()`."""

from __future__ import annotations

import os

from imgsearch.stores import Stores


def forget(stores: Stores, path: str) -> int:
    """Remove a file, or every file under a folder, from both stores (vectors first, so a crash
    in between leaves rows without points, which `repair` mends). Returns how many rows went."""
    rows = stores.catalog.ids_under(os.path.abspath(path))
    if not rows:
        return 0
    with_vector = [i for i, has in rows.items() if has]
    if with_vector:
        stores.vectors.delete(with_vector)
        stores.vectors.flush()
    stores.catalog.delete(list(rows))
    return len(rows)


def relocate(stores: Stores, src: str, dest: str) -> int:
    """A file or folder renamed or moved inside the watched roots. Returns how many rows moved;
    0 means `src` was not indexed (the caller indexes `dest` as new)."""
    moved, replaced = stores.catalog.move_under(os.path.abspath(src), os.path.abspath(dest))
    if replaced:
        stores.vectors.delete(replaced)
        stores.vectors.flush()
    return moved
