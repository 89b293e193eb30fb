"""What the later phases (captions, text) share: a picture whose content was already done
(a copy, an export twice) takes the stored result instead of a model's time, and what their
model work gives back (`Seen`), here or from a Ray worker."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from imgsearch.progress import Progress
from imgsearch.stores.catalog import FileInfo

from .reader import Failed

# What a later phase's model made of one picture: (its path, the caption or the text read in it,
# None for no text), or the reader's `Failed` for a picture it could not read now (changed or
# gone since phase one).
Seen = tuple[str, str | None] | Failed


def reuse_by_content(todo: Sequence[FileInfo], known: Mapping[str, Any], store: Callable[[dict[int, Any]], None],
                     progress: Progress) -> tuple[int, list[FileInfo]]:
    """Store `known` results (by content hash) for the pictures that have one; returns how many,
    and the pictures left to do."""
    reuse = {f.id: known[f.sha256] for f in todo if f.sha256 in known}
    if reuse:
        store(reuse)
        progress.advance(len(reuse))
    return len(reuse), [f for f in todo if f.id not in reuse]
