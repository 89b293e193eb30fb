"""A file skipped for a reason of the moment (no permission, gone mid-scan) is tried again on the
next run; one skipped for what it holds stays skipped until it changes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from imgsearch.indexer import index, reader
from imgsearch.indexer.reader import retry_later
from imgsearch.models import Models
from imgsearch.settings import Settings
from imgsearch.stores import open_stores


@pytest.fixture
def env(tiny_settings: Settings):
    models = Models(tiny_settings)
    stores = open_stores(tiny_settings, models.facts(), models.clip.dim)
    yield stores, models
    stores.close()


@contextmanager
def unreadable(path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """`path` cannot be opened: a real chmod, except as root (CI), whom no mode stops; then the
    one function that opens image files fails as the kernel would."""
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0)
        try:
            yield
        finally:
            path.chmod(mode)
        return
    real = reader.read_file

    def denied(p: Path) -> tuple[bytes, os.stat_result]:
        if Path(p) == path:
            raise PermissionError(13, "Permission denied")
        return real(p)

    with monkeypatch.context() as m:
        m.setattr(reader, "read_file", denied)
        yield


def test_a_file_made_readable_again_is_indexed_on_the_next_run(env, shapes_folder: Path, monkeypatch) -> None:
    stores, models = env
    locked = min(shapes_folder.iterdir())
    mtime = locked.stat().st_mtime_ns
    (shapes_folder / "notes.png").write_text("not a picture at all")
    with unreadable(locked, monkeypatch):
        first = index([shapes_folder], stores, models, captions=False)
    reasons = dict(first.skipped)
    assert reasons[str(locked)] == "unreadable: Permission denied"
    assert first.embedded == 11
    assert locked.stat().st_mtime_ns == mtime, "making it readable changed nothing the scan compares"

    again = index([shapes_folder], stores, models, captions=False)
    assert again.embedded == 1 and again.unchanged == 12, again.skipped
    assert [p for p, _ in again.skipped] == [], "the corrupt file is not retried while unchanged"
    notes = str(shapes_folder / "notes.png")
    assert dict(stores.catalog.skipped()) == {notes: reasons[notes]}
    assert stores.vectors.count() == stores.catalog.counts().with_vector == 12


def test_which_reasons_are_of_the_moment() -> None:
    assert retry_later("unreadable: Permission denied")
    assert retry_later("unreadable: Input/output error")
    assert retry_later("vanished during the scan")
    assert retry_later("not enough memory to decode")
    for reason in ("empty file", "corrupt or truncated JPEG file", "not an image (unrecognised content)",
                   "too many pixels (over 256 MP)", "file too large (2.5 GB)", "absurd dimensions (9000x10)",
                   "unreadable RAW file (corrupt, or a camera LibRaw does not know)"):
        assert not retry_later(reason), reason


def test_a_file_gone_before_it_is_read_leaves_no_row(env, shapes_folder: Path, monkeypatch) -> None:
    """Listed by the scan, deleted or moved before it was read (the watch service indexes a file
    just renamed): nothing to remember of it, and a row for a path that does not exist would
    stay until the next full rescan."""
    stores, models = env
    victim = min(shapes_folder.iterdir())
    real = reader.read_file

    def vanishing(p: Path) -> tuple[bytes, os.stat_result]:
        if Path(p) == victim:
            victim.unlink()
        return real(p)

    monkeypatch.setattr(reader, "read_file", vanishing)
    report = index([shapes_folder], stores, models, captions=False)
    assert report.skipped == [(str(victim), "vanished during the scan")]
    assert str(victim) not in stores.catalog.files_under([str(shapes_folder)])
    assert stores.catalog.skipped() == []


def test_a_file_rewritten_while_it_is_read_is_read_again(env, shapes_folder: Path, monkeypatch) -> None:
    """A program rewrites a picture (truncate, then write: `Path.write_bytes`, most editors) while
    the run reads it: the read sees the emptied file, the size and mtime after it are the finished
    file's. Recording "empty file" under those would make the finished file look unchanged to the
    writer's own event and to every later run, so it would never be indexed; the catalog keeps
    what it had, and the next run reads the new content."""
    stores, models = env
    index([shapes_folder], stores, models, captions=False)
    victim, donor = sorted(shapes_folder.iterdir())[:2]
    before = stores.catalog.files_under([str(shapes_folder)])[str(victim)]
    new_content = donor.read_bytes() + b"\0" * 64  # another picture: a new hash, a new size
    real_open = open

    class Rewritten:
        """The victim's file object: its content is truncated under the read and written after it."""

        def __init__(self, f) -> None:
            self.f = f

        def read(self) -> bytes:
            victim.write_bytes(b"")
            data = self.f.read()
            victim.write_bytes(new_content)
            return data

        def __getattr__(self, name: str):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.f.close()

    def opening(path, *args, **kwargs):
        f = real_open(path, *args, **kwargs)
        return Rewritten(f) if Path(path) == victim and victim.read_bytes() != new_content else f

    with monkeypatch.context() as m:
        m.setattr(reader, "open", opening, raising=False)
        victim.write_bytes(victim.read_bytes())  # a new mtime: the run reads it
        during = index([shapes_folder], stores, models, captions=False)
    assert during.skipped == [(str(victim), reader.CHANGING)]
    kept = stores.catalog.files_under([str(shapes_folder)])[str(victim)]
    assert kept.has_vector and kept.error is None and kept.sha256 == before.sha256, "the catalog kept its row"

    after = index([shapes_folder], stores, models, captions=False)  # the writer's event, or the next run
    assert after.skipped == [] and after.embedded + after.copied == 1
    row = stores.catalog.files_under([str(shapes_folder)])[str(victim)]
    assert row.has_vector and row.error is None and row.size == len(new_content)
    assert stores.vectors.count() == stores.catalog.counts().with_vector


def test_a_model_that_cannot_load_fails_the_run_not_the_pictures(env, shapes_folder: Path) -> None:
    """CLIP is loaded when the first picture is decoded (a run of moves and copies loads none):
    if it cannot be, the run stops with the model's error and no picture is recorded as bad;
    the next run with the model embeds them all."""
    from imgsearch.errors import ModelUnavailableError

    stores, models = env
    broken = Models(models.settings)
    tries = []

    def no_weights() -> None:
        tries.append(1)
        raise ModelUnavailableError("CLIP weights not found: set IMGSEARCH_CLIP_PRETRAINED")

    broken._load_clip = no_weights  # type: ignore[method-assign]
    with pytest.raises(ModelUnavailableError, match="IMGSEARCH_CLIP_PRETRAINED"):
        index([shapes_folder], stores, broken, captions=False, texts=False)
    assert stores.catalog.counts().skipped == 0 and len(tries) == 1  # not once per queued picture
    report = index([shapes_folder], stores, models, captions=False, texts=False)
    assert report.embedded == 12 and not report.skipped
