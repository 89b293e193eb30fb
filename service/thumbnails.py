"""Small WebP thumbnails of indexed images, made once and kept in the index folder under the
image's content hash (a moved or renamed file keeps its thumbnail; a changed one gets a new one)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from imgsearch.imaging import decode
from imgsearch.stores.catalog import FileInfo

SIZE = 320
THUMBNAILS = "thumbnails"  # the folder's name inside the index folder


def thumbnail_path(folder: Path, info: FileInfo) -> Path:
    key = info.sha256 or f"id-{info.id}-{info.size}"
    return folder / key[:2] / f"{key}-{SIZE}.webp"


def thumbnail(folder: Path, info: FileInfo) -> Path:
    """The thumbnail file, made now if missing. Raises BadImageError for an unreadable image."""
    path = thumbnail_path(folder, info)
    if path.exists():
        return path
    with open(info.path, "rb") as f:
        image = decode(f.read(), min_side=SIZE).image
    image.thumbnail((SIZE, SIZE))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    image.save(tmp, "WEBP", quality=80, method=4)
    os.replace(tmp, path)  # readers never see half a file
    return path


def prune(folder: Path, keep: set[str]) -> int:
    """Delete thumbnails of contents no longer indexed; returns how many went."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.glob("*/*.webp"):
        if path.name.rsplit("-", 1)[0] not in keep:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
