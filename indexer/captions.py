"""The second phase: BLIP captions for every image that has a vector but no caption yet.
Identical contents are captioned once. Search works before this phase starts. The captioner runs
here, or wherever the run's `Captioning` sends the pictures (`index --ray`: on the cluster's
workers, `distributed_texts`); the captions are written here either way, a claimed chunk at a
time."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from imgsearch.models import Models
from imgsearch.models.hub import model_ref_id
from imgsearch.progress import Progress
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.stores.writers import claimed

from .reader import AsDecoded, Decoded, Failed, read_all
from .reuse import Seen, reuse_by_content
from .scan import FoundFile

CHUNK = 256  # pictures claimed at a time: what another writer cannot take from this one

Captioning = Callable[[list[FoundFile], int], Iterator[list[Seen]]]
"""Captions `files` (the phase expects to caption that many pictures in all, 0 after its first
chunk), a batch of results at a time, in order: here (`local_captioning`) or elsewhere."""


def caption_pending(
    stores: Stores, models: Models, workers: int, progress: Progress, *, limit: int = 10**9,
    cancel: Callable[[], bool] | None = None, captioning: Captioning | None = None,
) -> int:
    """Caption up to `limit` images, claimed a chunk at a time (`CHUNK`: writers sharing the
    catalog share the work, `stores.writers`); `cancel` is polled between batches (the service
    stops early when new files wait for vectors, which come first). `captioning`: where the
    captioner runs (None: here, `workers` threads decoding)."""
    stores.catalog.adopt_captioner(model_ref_id(models.profile.captioner))
    total = min(limit, stores.catalog.waiting("caption"))
    if not total:
        return 0
    progress.phase("captions", total)
    here = captioning is None
    captioning = captioning or local_captioning(models, workers)
    done, captioned = 0, 0
    for todo in claimed(stores, stores.catalog.needs_caption, limit, CHUNK, cancel):
        n, pictures = _caption_chunk(todo, stores, captioning, progress, 0 if captioned else total, cancel)
        done, captioned = done + n, captioned + pictures
    if not here:  # this machine's captioner did not run: what it would choose is unknown
        return done
    from imgsearch.models.blip_vision import VARIANT  # torch's module: only where captions run

    vision = models.captioner.vision if captioned else None
    if vision is not None and vision.runtime == VARIANT and not (cancel and cancel()):
        prepare_reranker(models, total, progress)
    return done


def _caption_chunk(todo: list[FileInfo], stores: Stores, captioning: Captioning, progress: Progress,
                   expected: int, cancel: Callable[[], bool] | None) -> tuple[int, int]:
    """(rows done, pictures the captioner saw) of one claimed chunk; identical contents are
    captioned once. `expected`: the pictures the run expects to caption (0 after its first)."""
    known = stores.catalog.caption_of_sha({f.sha256 for f in todo if f.sha256})
    done, rest = reuse_by_content(todo, known, stores.catalog.set_captions, progress)
    if not rest:
        return done, 0
    ids = {f.path: f.id for f in rest}
    files = [FoundFile(path=Path(f.path), size=f.size, mtime_ns=0) for f in rest]
    for seen in captioning(files, expected):
        # a picture that could not be read has changed or gone since phase one: the next run sees it
        captions = {ids[s[0]]: s[1] for s in seen if not isinstance(s, Failed)}
        if captions:
            stores.catalog.set_captions(captions)
            done += len(captions)
        progress.advance(len(seen))
        if captions and cancel is not None and cancel():
            break
    return done, len(rest)


def local_captioning(models: Models, workers: int) -> Captioning:
    """Captions made here: `workers` threads decode, the profile's captioner captions in batches
    of `caption_batch_size` (a large run may build its faster vision tower first)."""

    def caption(files: list[FoundFile], expected: int) -> Iterator[list[Seen]]:
        captioner = models.captioner
        if captioner.vision is not None:
            captioner.vision.expect(expected)
        return caption_files(captioner, files, models.settings.caption_batch_size, workers)

    return caption


def caption_files(captioner: Any, files: Sequence[FoundFile], batch_size: int,
                  workers: int) -> Iterator[list[Seen]]:
    """Read and decode `files` with the reader (`workers` threads) and caption them `batch_size`
    at a time: the captions of a batch, or a file that could not be read, at a time. What the
    captioner does here and on a Ray worker alike."""
    size = int(captioner.processor.image_processor.size["height"])
    batch: list[Decoded] = []

    def captioned() -> list[Seen]:
        texts = captioner.caption([d.pixels for d in batch])
        return [(str(d.found.path), t) for d, t in zip(batch, texts)]

    for outcome in read_all(files, AsDecoded(size), {}, workers):
        if isinstance(outcome, Failed):
            yield [outcome]
            continue
        assert isinstance(outcome, Decoded)
        batch.append(outcome)
        if len(batch) >= batch_size:
            yield captioned()
            batch = []
    if batch:
        yield captioned()


def prepare_reranker(models: Models, pictures: int, progress: Progress) -> None:
    """Where int8 won for the captioner's vision tower, the ITM model's (the same ViT) will win
    too: build its export now, once, in a run as large, so that the first reranks of pictures
    whose vision states are not cached yet take the int8 path (~3x faster than torch fp32)."""
    least = models.settings.blip_export_min_pictures
    if pictures < least:
        return
    progress.phase("reranker's vision tower", 1)
    models.itm.vision.expect(pictures)
    progress.advance()

