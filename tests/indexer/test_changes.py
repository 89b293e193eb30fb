"""Moves and deletions applied from events keep ids (so vectors and captions) or drop both stores' entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch.indexer import index
from imgsearch.indexer.changes import forget, relocate
from imgsearch.models import Models
from imgsearch.settings import Settings
from imgsearch.stores import open_stores


@pytest.fixture
def env(tiny_settings: Settings, shapes_folder: Path):
    models = Models(tiny_settings)
    stores = open_stores(tiny_settings, models.facts(), models.clip.dim)
    sub = shapes_folder / "album"
    sub.mkdir()
    for p in sorted(shapes_folder.glob("*.*"))[:4]:
        p.rename(sub / p.name)
    index([shapes_folder], stores, models, captions=False)
    yield stores, shapes_folder, models
    stores.close()


def test_relocating_a_folder_keeps_ids_and_vectors(env) -> None:
    stores, folder, _ = env
    before = {Path(p).name: k.id for p, k in stores.catalog.files_under([str(folder / "album")]).items()}
    vectors = stores.vectors.get_vectors(list(before.values()))
    (folder / "album").rename(folder / "trip")
    assert relocate(stores, str(folder / "album"), str(folder / "trip")) == 4
    after = {Path(p).name: k.id for p, k in stores.catalog.files_under([str(folder / "trip")]).items()}
    assert after == before and not stores.catalog.files_under([str(folder / "album")])
    assert stores.vectors.get_vectors(list(after.values())).keys() == vectors.keys()
    assert relocate(stores, str(folder / "nothing"), str(folder / "else")) == 0


def test_a_file_moved_onto_another_replaces_it_in_both_stores(env) -> None:
    stores, folder, _ = env
    a, b = sorted((folder / "album").iterdir())[:2]
    known = stores.catalog.files_under([str(folder)])
    a_id, b_id = known[str(a)].id, known[str(b)].id
    a.replace(b)
    assert relocate(stores, str(a), str(b)) == 1
    assert stores.catalog.files_under([str(b)])[str(b)].id == a_id
    assert b_id not in stores.vectors.all_ids() and a_id in stores.vectors.all_ids()


def test_forgetting_a_folder_drops_rows_and_points_but_not_its_prefix_siblings(env) -> None:
    stores, folder, models = env
    sibling = folder / "album2"
    sibling.mkdir()
    moved = sorted(folder.glob("*.*"))[0]
    moved.rename(sibling / moved.name)
    index([folder], stores, models, captions=False)
    total = stores.vectors.count()
    assert forget(stores, str(folder / "album")) == 4
    assert stores.vectors.count() == total - 4 == len(stores.catalog.vector_ids())
    assert stores.catalog.files_under([str(sibling)])  # "album2" is not under "album"
