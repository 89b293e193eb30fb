"""Read, hash and decode files in a thread pool, in order, so the model never waits on decoding.

Pillow and hashlib release the GIL, so threads overlap decode with the model's own work. A file
whose content hash is already indexed (a move, a rename, a duplicate) is not decoded at all.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from imgsearch.errors import BadImageError
from imgsearch.imaging import decode
from imgsearch.stores.catalog import FileInfo

from .scan import FoundFile

MAX_FILE_BYTES = 2 * 1024**3

# Reasons a file was skipped that say nothing of its bytes, only of the moment it was read: no
# permission (yet), a flaky disk or share, memory short (`imaging.decode`'s "not enough memory to
# decode"), gone mid-scan (no longer kept in the catalog, but older versions did). Such a file is
# read again on the next run even when its size and mtime did not change; a file bad in its
# content waits until it changes.
UNREADABLE = "unreadable"
VANISHED = "vanished during the scan"
CHANGING = "changed while being read"  # written meanwhile: the writer's next event or scan reads it again
_OF_THE_MOMENT = (f"{UNREADABLE}:", VANISHED, CHANGING, "not enough memory")


def retry_later(reason: str) -> bool:
    """Whether a skipped file's reason (as kept in the catalog) may be gone by the next run."""
    return reason.startswith(_OF_THE_MOMENT)


class ModelInput(Protocol):
    """What the model a picture is decoded for asks of it: the smallest side it uses (a JPEG is
    draft-decoded down to it, `imaging.decode`) and its own preprocessing. Asked for only when a
    picture is decoded: one whose content is stored already is not."""

    @property
    def min_side(self) -> int: ...

    def prepare(self, image: Any) -> Any: ...


@dataclass(frozen=True)
class AsDecoded:
    """Pictures as decoded, at least `min_side` on their short side (captions, OCR)."""

    min_side: int

    def prepare(self, image: Any) -> Any:
        return image


@dataclass(frozen=True)
class Decoded:
    found: FoundFile
    sha256: str
    width: int
    height: int
    taken_at: datetime | None
    pixels: Any  # the model's preprocessed tensor
    camera: str | None = None


@dataclass(frozen=True)
class Reused:
    found: FoundFile
    sha256: str
    source: FileInfo


@dataclass(frozen=True)
class Failed:
    found: FoundFile
    reason: str


Outcome = Decoded | Reused | Failed


class FileChanging(OSError):
    """The file changed between the first and the last byte read (being written right now)."""


def read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """A file's bytes and the size and mtime of what was read (the one place files are opened).
    A file written meanwhile raises `FileChanging`: its bytes may be torn (a rewrite read between
    its truncation and its write gives an empty file) and no size and mtime describe them, so
    nothing about it may be recorded (the signature taken after such a read would match the
    finished file, which would then never be read again)."""
    with open(path, "rb") as f:
        before = os.fstat(f.fileno())
        data = f.read()
        after = os.fstat(f.fileno())
    signatures = [(st.st_size, st.st_mtime_ns) for st in (before, after)]
    if signatures[0] != signatures[1] or len(data) != after.st_size:
        raise FileChanging(f"{path} changed while being read")
    return data, after


def read_one(found: FoundFile, model: ModelInput, known: dict[str, FileInfo]) -> Outcome:
    try:
        if found.size > MAX_FILE_BYTES:
            return Failed(found, f"file too large ({found.size / 1024**3:.1f} GB)")
        data, st = read_file(found.path)
        found = FoundFile(found.path, st.st_size, st.st_mtime_ns)
    except FileNotFoundError:
        return Failed(found, VANISHED)
    except FileChanging:
        return Failed(found, CHANGING)
    except OSError as e:
        return Failed(found, f"{UNREADABLE}: {e.strerror or e}")
    sha = hashlib.sha256(data).hexdigest()
    if sha in known:
        return Reused(found, sha, known[sha])
    min_side = model.min_side  # may load the model: a failure there is the run's, not this file's
    try:
        img = decode(data, min_side=min_side)
        return Decoded(found, sha, img.width, img.height, img.taken_at, model.prepare(img.image), img.camera)
    except BadImageError as e:
        return Failed(found, str(e))
    except Exception as e:  # nothing a folder holds may crash a run
        return Failed(found, f"cannot be read as an image ({type(e).__name__}: {e})"[:200])


def read_all(files: Iterable[FoundFile], model: ModelInput, known: dict[str, FileInfo],
             workers: int, ahead: int = 0) -> Iterator[Outcome]:
    """Outcomes in input order, with at most `ahead` files in flight (at least a few per worker).
    A consumer that embeds in batches passes two batches: the next batch is then decoded while
    the model runs the current one, instead of after it (CLIP phase, 640x480 photos, AMD EPYC
    with AVX512-BF16, two alternating pairs: torch bf16 19.5 -> 21.0-21.4 img/s, the int8 ONNX
    tower 32.3-32.8 -> 33.0-33.6; a preprocessed picture is ~0.8 MB)."""
    ahead = max(8, workers * 4, ahead)
    pending: deque[Future[Outcome]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        for found in files:
            pending.append(pool.submit(read_one, found, model, known))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
