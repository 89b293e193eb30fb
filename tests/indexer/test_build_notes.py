"""One-off waits (a tower's faster variant built, the tag vocabulary embedded) are said on the
progress of the run that causes them, in order and each closed, and only there: not on another
thread's, not when nothing is built."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from imgsearch.progress import reporting, waiting
from imgsearch.settings import Settings


class Recorder:
    """A Progress that keeps what it was told, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def phase(self, name: str, total: int | None) -> None:
        self.events.append(("phase", name))

    def advance(self, n: int = 1) -> None:
        self.events.append(("advance", n))

    def note(self, text: str | None) -> None:
        self.events.append(("note", text))

    def done(self) -> None:
        self.events.append(("done", None))

    def notes(self) -> list[str | None]:
        return [value for kind, value in self.events if kind == "note"]


def test_a_wait_is_said_only_on_the_progress_of_the_run_that_causes_it() -> None:
    outer, inner = Recorder(), Recorder()
    with waiting("nobody listens"):
        pass
    with reporting(outer):
        with waiting("one"):
            pass
        with reporting(inner):
            with pytest.raises(ValueError), waiting("two"):
                raise ValueError("a failed build still ends its wait")
        elsewhere = threading.Thread(target=lambda: waiting("three").__enter__())
        elsewhere.start()
        elsewhere.join()
        with waiting("four"):
            pass
    with waiting("after"):
        pass
    assert outer.notes() == ["one", None, "four", None]
    assert inner.notes() == ["two", None]


def test_an_index_run_says_each_build_inside_the_phase_that_waits_for_it(tmp_path: Path,
                                                                         shapes_folder: Path) -> None:
    from imgsearch.indexer import run_index

    settings = Settings(home=tmp_path / "home", models="tiny", dtype="float32", image_runtime="onnx-int8",
                        blip_export_min_pictures=5)
    progress = Recorder()
    run_index(settings, [shapes_folder], captions=True, texts=False, progress=progress)
    notes = progress.notes()
    said = [n for n in notes if n is not None]
    assert notes == [n for text in said for n in (text, None)]  # each wait closed before the next
    assert [n.split(",")[0] for n in said] == [
        "building a faster image encoder for this CPU",
        "embedding the tag vocabulary",
        "building a faster vision tower for captions on this CPU",
        "building a faster vision tower for reranking on this CPU",
        "preparing the query encoder for fast searches",
        "building a faster query encoder for this CPU",
    ]
    events = progress.events
    build = events.index(("note", said[0]))
    assert events[:build][-1] == ("phase", "vectors")  # said as the vectors bar starts, before any picture
    captions = events.index(("note", said[2]))
    assert [e for e in events[:captions] if e[0] == "phase"][-1] == ("phase", "captions")

    again = Recorder()
    run_index(settings, [shapes_folder], captions=True, texts=False, progress=again)
    assert again.notes() == []  # built once: a later run waits for nothing


def test_the_service_activity_carries_a_wait_until_it_ends_or_the_phase_changes() -> None:
    from imgsearch.service.engine import Activity, ActivityProgress

    activity = Activity()
    progress = ActivityProgress(activity)
    progress.phase("captions", 32)
    with reporting(progress), waiting("building a faster vision tower for captions on this CPU"):
        assert activity.as_json()["note"] == "building a faster vision tower for captions on this CPU"
    assert activity.note is None
    progress.note("a wait a failed run left open")
    progress.phase("text", 4)
    assert activity.as_json()["note"] is None
