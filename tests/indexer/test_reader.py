"""Reading pictures ahead of the model: outcomes come in the files' order, and as many files are
taken up front as the consumer asks (two batches for the CLIP phase), never fewer than a few per
worker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from imgsearch.indexer.reader import AsDecoded, Decoded, read_all
from imgsearch.indexer.scan import FoundFile
from PIL import Image


@pytest.fixture(scope="module")
def pictures(tmp_path_factory: pytest.TempPathFactory) -> list[FoundFile]:
    folder = tmp_path_factory.mktemp("pictures")
    found = []
    for i in range(70):
        path = folder / f"{i:02d}.jpg"
        Image.new("RGB", (48, 32), (i * 3, 100, 200 - i)).save(path, quality=90)
        st = path.stat()
        found.append(FoundFile(path, st.st_size, st.st_mtime_ns))
    return found


@pytest.mark.parametrize(("ahead", "taken"), [(0, 8), (64, 64), (3, 8)])
def test_files_are_taken_ahead_as_asked_and_come_back_in_order(pictures: list[FoundFile], ahead: int,
                                                               taken: int) -> None:
    pulled = 0

    def files() -> Iterator[FoundFile]:
        nonlocal pulled
        for found in pictures:
            pulled += 1
            yield found

    outcomes = read_all(files(), AsDecoded(16), {}, workers=2, ahead=ahead)
    first = next(outcomes)
    assert pulled == taken  # submitted before the first outcome was handed over
    rest = list(outcomes)
    assert [o.found.path for o in [first, *rest]] == [f.path for f in pictures]
    assert all(isinstance(o, Decoded) and o.width == 48 for o in [first, *rest])
