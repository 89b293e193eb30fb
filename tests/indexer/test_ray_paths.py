"""`distributed.check_here`: a file a Ray worker could not open but this machine can means the
worker does not see the same files (no shared mount), and the run stops saying so; a file that
is gone or unreadable here too, or one skipped for what it holds, is skipped as in a local run."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch.indexer.distributed import RayIndexError, check_here
from imgsearch.indexer.reader import CHANGING, UNREADABLE, VANISHED, Failed
from imgsearch.indexer.scan import FoundFile


def _failed(path: Path, reason: str) -> Failed:
    return Failed(FoundFile(path, 1, 0), reason)


def test_a_file_a_worker_could_not_open_but_this_machine_can_stops_the_run(tmp_path: Path) -> None:
    here = tmp_path / "photo.jpg"
    here.write_bytes(b"\xff\xd8 bytes")
    for reason in (VANISHED, f"{UNREADABLE}: Permission denied"):
        with pytest.raises(RayIndexError, match="not readable on the Ray node node-2.*shared mount"):
            check_here(_failed(here, reason), "node-2")


def test_other_failures_say_nothing_of_the_node(tmp_path: Path) -> None:
    here = tmp_path / "photo.jpg"
    here.write_bytes(b"")
    for reason in ("empty file", CHANGING, "not an image (unrecognised content)"):
        check_here(_failed(here, reason), "node-2")  # skipped as in a local run
    check_here(_failed(tmp_path / "gone.jpg", VANISHED), "node-2")  # gone here too
