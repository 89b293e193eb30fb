"""What the later phases (captions, text) share: a picture whose content was already done
(a copy, an export twice) takes the stored result instead of a model's time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from imgsearch.progress import Progress
from imgsearch.stores.catalog import FileInfo


def reuse_by_content(todo: Sequence[FileInfo], known: Mapping[str, Any], store: Callable[[dict[int, Any]], None],
                     progress: Progress) -> tuple[int, list[FileInfo]]:
    """Store `known` results (by content hash) for the pictures that have one; returns how many,
    and the pictures left to do."""
    reuse = {f.id: known[f.sha256] for f in todo if f.sha256 in known}
    if reuse:
        store(reuse)
        progress.advance(len(reuse))
    return len(reuse), [f for f in todo if f.id not in reuse]
