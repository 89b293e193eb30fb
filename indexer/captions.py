"""The second phase: BLIP captions for every image that has a vector but no caption yet.
Identical contents are captioned once. Search works before this phase starts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imgsearch.models import Models
from imgsearch.models.hub import model_ref_id
from imgsearch.progress import Progress
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.stores.writers import claimed

from .reader import Decoded, Failed, read_all
from .reuse import reuse_by_content
from .scan import FoundFile

CHUNK = 256  # pictures claimed at a time: what another writer cannot take from this one


def caption_pending(
    stores: Stores, models: Models, workers: int, progress: Progress, *, limit: int = 10**9,
    cancel: Callable[[], bool] | None = None,
) -> int:
    """Caption up to `limit` images, claimed a chunk at a time (`CHUNK`: writers sharing the
    catalog share the work, `stores.writers`); `cancel` is polled between batches (the service
    stops early when new files wait for vectors, which come first)."""
    stores.catalog.adopt_captioner(model_ref_id(models.profile.captioner))
    total = min(limit, stores.catalog.waiting("caption"))
    if not total:
        return 0
    progress.phase("captions", total)
    done, captioned = 0, 0
    for todo in claimed(stores, stores.catalog.needs_caption, limit, CHUNK, cancel):
        n, pictures = _caption_chunk(todo, stores, models, workers, progress, 0 if captioned else total, cancel)
        done, captioned = done + n, captioned + pictures
    from imgsearch.models.blip_vision import VARIANT  # torch's module: only where captions run

    vision = models.captioner.vision if captioned else None
    if vision is not None and vision.runtime == VARIANT and not (cancel and cancel()):
        prepare_reranker(models, total, progress)
    return done


def _caption_chunk(todo: list[FileInfo], stores: Stores, models: Models, workers: int, progress: Progress,
                   expected: int, cancel: Callable[[], bool] | None) -> tuple[int, int]:
    """(rows done, pictures the captioner saw) of one claimed chunk; identical contents are
    captioned once. `expected`: the pictures the run expects to caption (0 after its first)."""
    known = stores.catalog.caption_of_sha({f.sha256 for f in todo if f.sha256})
    done, rest = reuse_by_content(todo, known, stores.catalog.set_captions, progress)
    if not rest:
        return done, 0
    captioner = models.captioner
    if captioner.vision is not None:
        captioner.vision.expect(expected)  # a large run may build the faster vision tower first
    size = int(captioner.processor.image_processor.size["height"])
    by_path = {f.path: f for f in rest}
    files = [FoundFile(path=Path(f.path), size=f.size, mtime_ns=0) for f in rest]
    batch: list[tuple[int, object]] = []

    def flush() -> None:
        nonlocal done
        if batch:
            texts = captioner.caption([img for _, img in batch])
            stores.catalog.set_captions({fid: t for (fid, _), t in zip(batch, texts)})
            done += len(batch)
            progress.advance(len(batch))
            batch.clear()

    for outcome in read_all(files, size, lambda im: im, {}, workers):
        if isinstance(outcome, Failed):
            progress.advance()  # changed or gone since phase one: the next run sees it
            continue
        assert isinstance(outcome, Decoded)
        batch.append((by_path[str(outcome.found.path)].id, outcome.pixels))
        if len(batch) >= models.settings.caption_batch_size:
            flush()
            if cancel is not None and cancel():
                break
    flush()
    return done, len(rest)


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

