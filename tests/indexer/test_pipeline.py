"""The index follows the folder: new, unchanged, moved, duplicated, changed, deleted, broken."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from imgsearch.models import Models
from imgsearch.settings import Settings
from imgsearch.stores import Stores, open_stores
from imgsearch.indexer import index


@pytest.fixture
def env(tiny_settings: Settings):
    models = Models(tiny_settings)
    stores = open_stores(tiny_settings, models.facts(), models.clip.dim)
    yield stores, models
    stores.close()


def _consistent(stores: Stores) -> None:
    c = stores.catalog.counts()
    assert stores.vectors.count() == c.with_vector == c.images
    assert stores.vectors.all_ids() == stores.catalog.vector_ids()


def test_first_run_indexes_every_image_and_captions_them(env, shapes_folder: Path) -> None:
    stores, models = env
    report = index([shapes_folder], stores, models)
    assert report.seen == 12 and report.embedded == 12 and not report.skipped
    assert report.captioned == 12
    c = stores.catalog.counts()
    assert c.images == 12 and c.captioned == 12
    _consistent(stores)


def test_second_run_changes_nothing(env, shapes_folder: Path) -> None:
    stores, models = env
    index([shapes_folder], stores, models, captions=False)
    before = stores.vectors.all_ids()
    report = index([shapes_folder], stores, models, captions=False)
    assert report.embedded == 0 and report.unchanged == 12
    assert stores.vectors.all_ids() == before


def test_move_rename_and_duplicate_reuse_vectors_without_embedding(env, shapes_folder: Path) -> None:
    stores, models = env
    index([shapes_folder], stores, models)
    files = sorted(p for p in shapes_folder.iterdir())
    moved_src, renamed_src, dup_src = files[0], files[1], files[2]
    old = stores.catalog.files_under([str(shapes_folder)])
    (shapes_folder / "sub").mkdir()
    moved = shapes_folder / "sub" / moved_src.name
    moved_src.rename(moved)
    renamed = renamed_src.with_name("holiday" + renamed_src.suffix)
    renamed_src.rename(renamed)
    dup = shapes_folder / ("copy" + dup_src.suffix)
    shutil.copyfile(dup_src, dup)
    report = index([shapes_folder], stores, models)
    assert report.embedded == 0, "moves and copies must not run the model"
    assert report.moved == 2 and report.copied == 1 and report.removed == 0
    now = stores.catalog.files_under([str(shapes_folder)])
    assert now[str(moved)].id == old[str(moved_src)].id
    assert now[str(renamed)].id == old[str(renamed_src)].id
    assert str(moved_src) not in now
    vec = stores.vectors.get_vectors([now[str(dup)].id, now[str(dup_src)].id])
    assert (vec[now[str(dup)].id] == vec[now[str(dup_src)].id]).all()
    infos = stores.catalog.get([now[str(dup)].id, now[str(dup_src)].id])
    assert infos[now[str(dup)].id].caption == infos[now[str(dup_src)].id].caption is not None
    _consistent(stores)


def test_deleted_files_leave_the_index(env, shapes_folder: Path) -> None:
    stores, models = env
    index([shapes_folder], stores, models, captions=False)
    victims = sorted(shapes_folder.iterdir())[:3]
    for v in victims:
        v.unlink()
    report = index([shapes_folder], stores, models, captions=False)
    assert report.removed == 3
    assert stores.vectors.count() == 9
    _consistent(stores)


def test_changed_content_is_embedded_again_under_the_same_id(env, shapes_folder: Path, tmp_path: Path) -> None:
    stores, models = env
    index([shapes_folder], stores, models, captions=False)
    a, b = sorted(shapes_folder.iterdir())[:2]
    before = stores.catalog.files_under([str(shapes_folder)])[str(a)]
    other = tmp_path / "other.png"
    from PIL import Image

    Image.new("RGB", (200, 180), (10, 200, 30)).save(other)
    os.replace(other, a)  # same path, new content
    report = index([shapes_folder], stores, models, captions=False)
    assert report.embedded == 1
    after = stores.catalog.files_under([str(shapes_folder)])[str(a)]
    assert after.id == before.id and after.sha256 != before.sha256
    _consistent(stores)


def test_broken_files_are_skipped_with_reasons_and_the_run_goes_on(env, shapes_folder: Path) -> None:
    stores, models = env
    good = next(p for p in sorted(shapes_folder.iterdir()) if p.suffix == ".jpg")
    (shapes_folder / "empty.jpg").write_bytes(b"")
    (shapes_folder / "truncated.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (shapes_folder / "notes.png").write_text("not a picture at all")
    report = index([shapes_folder], stores, models, captions=False)
    reasons = dict(report.skipped)
    assert set(reasons) == {str(shapes_folder / n) for n in ("empty.jpg", "truncated.jpg", "notes.png")}
    assert all(r and "\n" not in r for r in reasons.values())
    assert report.embedded == 12
    assert dict(stores.catalog.skipped()) == reasons
    again = index([shapes_folder], stores, models, captions=False)
    assert again.skipped == [] and again.unchanged == 15, "known-bad files are not retried until they change"
    _consistent(stores)


def test_a_file_that_breaks_loses_its_vector(env, shapes_folder: Path) -> None:
    stores, models = env
    index([shapes_folder], stores, models, captions=False)
    victim = sorted(shapes_folder.iterdir())[0]
    victim.write_bytes(b"\x00" * 100)
    report = index([shapes_folder], stores, models, captions=False)
    assert [p for p, _ in report.skipped] == [str(victim)]
    assert stores.vectors.count() == 11
    _consistent(stores)


def test_indexing_one_folder_keeps_another_folders_images(env, tmp_path: Path) -> None:
    from conftest import make_shapes

    stores, models = env
    make_shapes(tmp_path / "a", 4, seed=1)
    make_shapes(tmp_path / "b", 5, seed=2)
    index([tmp_path / "a", tmp_path / "b"], stores, models, captions=False)
    shutil.rmtree(tmp_path / "a")
    report = index([tmp_path / "b"], stores, models, captions=False)
    assert report.removed == 0 and stores.vectors.count() == 9
    # A root that is gone altogether may be an unmounted drive: report it, keep its images.
    report = index([tmp_path / "a"], stores, models, captions=False)
    assert report.removed == 0 and [p for p, _ in report.problems] == [str(tmp_path / "a")]
    assert stores.vectors.count() == 9
    (tmp_path / "a").mkdir()
    report = index([tmp_path / "a"], stores, models, captions=False)
    assert report.removed == 4 and stores.vectors.count() == 5



@pytest.mark.parametrize("threshold", [12, 13])
def test_search_index_is_built_once_enough_vectors_wait_for_it(
    tiny_settings: Settings, shapes_folder: Path, threshold: int
) -> None:
    """With `search_index_threshold` unindexed vectors or more the run ends by building HNSW
    (Edge itself leaves segments under 10 MB brute force); with fewer it does not."""
    settings = tiny_settings.model_copy(update={"search_index_threshold": threshold})
    models = Models(settings)
    with open_stores(settings, models.facts(), models.clip.dim) as stores:
        report = index([shapes_folder], stores, models, captions=False)
        assert report.embedded == 12
        assert report.search_index_built == (threshold <= 12)
        assert report.as_json()["search_index_built"] == (threshold <= 12)
        _consistent(stores)
        assert stores.vectors.search(stores.vectors.get_vectors([1])[1], 1)[0][0] == 1
