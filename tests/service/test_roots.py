"""The remembered roots: each folder once, however often the service restarts or however a path
is spelled."""

from __future__ import annotations

import json
from pathlib import Path

from imgsearch.service.worker import ROOTS_FILE, Roots


def _saved(folder: Path) -> list[str]:
    return json.loads((folder / ROOTS_FILE).read_text())


def test_restarts_watching_the_same_folder_keep_it_once(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for _ in range(4):  # `imgsearch watch photos`, stopped and started again
        roots = Roots(tmp_path, [photos])
    assert roots.paths == [photos]
    assert _saved(tmp_path) == [str(photos)]


def test_spellings_of_one_folder_and_an_old_file_with_duplicates_are_merged(tmp_path: Path) -> None:
    photos, other = tmp_path / "photos", tmp_path / "other"
    (photos / "sub").mkdir(parents=True)
    other.mkdir()
    (tmp_path / ROOTS_FILE).write_text(json.dumps([str(photos), str(photos), str(other), str(photos) + "/"]))
    roots = Roots(tmp_path, [Path(f"{photos}/sub/.."), Path(str(other) + "/")])
    assert roots.paths == [photos, other]
    assert _saved(tmp_path) == [str(photos), str(other)]
    new = tmp_path / "new"
    assert roots.add([photos, Path(str(photos) + "/"), new, new]) == [new]
    assert _saved(tmp_path) == [str(photos), str(other), str(tmp_path / "new")]
