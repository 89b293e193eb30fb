"""Search you can steer, through the library's one interface over a real index (tiny models, real
files): pictures as queries, `--not`, folder / date / camera filters inside the vector engine,
sort and paging, and filters alone."""

from __future__ import annotations

import io
import os
import random
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from imgsearch.errors import ConfigError
from imgsearch.indexer import run_index
from imgsearch.library.local import LocalIndex
from imgsearch.searcher.request import IMAGE, INDEXED, SearchRequest, Term, words
from imgsearch.settings import Settings
from imgsearch.shapes.render import sample_scene, write_scene

CAMERAS = {"canon": ("Canon", "Canon EOS R6"), "nikon": ("NIKON CORPORATION", "NIKON Z 6")}


def _write(folder: Path, name: str, objects: list[tuple[str, str, str]], rng: random.Random, *,
           when: datetime, exif: bool = False, camera: str | None = None) -> Path:
    """A shapes picture dated `when`: by EXIF DateTimeOriginal (and make/model), or by mtime."""
    folder.mkdir(parents=True, exist_ok=True)
    path = write_scene(folder, name, sample_scene(rng, objects=objects), rng)
    if exif or camera:
        image = Image.open(path).convert("RGB")
        tags = Image.Exif()
        if camera:
            tags[0x010F], tags[0x0110] = CAMERAS[camera]
        if exif:
            tags.get_ifd(0x8769)[0x9003] = when.strftime("%Y:%m:%d %H:%M:%S")
        path.unlink()
        path = path.with_suffix(".jpg")
        image.save(path, quality=90, exif=tags)
    stamp = when.timestamp() if not exif else datetime(2001, 1, 1).timestamp()  # EXIF wins over mtime
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("steer")
    photos, rng = base / "photos", random.Random(14)
    colours = ("red", "green", "blue", "yellow", "purple", "orange")
    paths: dict[str, Path] = {}
    # 240 pictures in 2 big folders, dated through 2019 by mtime; 3 stars (1 %) in a rare folder
    for i in range(240):
        folder = photos / ("trips" if i % 2 else "home") / f"batch{i % 5}"
        shape = ("circle", "square", "triangle")[i % 3]
        paths[f"p{i}"] = _write(folder, f"p{i:03d}", [(shape, colours[i % 6], "large")], rng,
                                when=datetime(2019, 1 + i % 12, 1 + i % 28, 12))
    for i in range(3):
        paths[f"rare{i}"] = _write(photos / "rare", f"rare{i}", [("star", "yellow", "large")], rng,
                                   when=datetime(2020, 3, 10 + i, 9))
    paths["exif"] = _write(photos / "cams", "exif", [("star", "red", "large")], rng,
                           when=datetime(2018, 6, 30, 23, 59, 59), exif=True, camera="canon")
    paths["nikon"] = _write(photos / "cams", "nikon", [("star", "blue", "large")], rng,
                            when=datetime(2018, 8, 1, 0, 0), camera="nikon")
    settings = Settings(home=base / "home", models="tiny", batch_size=16, decode_workers=2)
    report = run_index(settings, [photos], captions=False)
    assert report.embedded == len(paths) and not report.skipped
    with LocalIndex(settings) as idx:
        yield idx, paths


def _search(idx: LocalIndex, *terms: Term, **kw) -> list:
    """Steering is about order and filters: no relevance cutoff unless a test asks for one."""
    return idx.search(SearchRequest(tuple(terms), **{"min_match": 0.0, **kw}))


def test_a_resized_reencoded_copy_finds_the_original_first(library, tmp_path: Path) -> None:
    idx, paths = library
    original = paths["p7"]
    copy = io.BytesIO()
    picture = Image.open(original).convert("RGB")
    picture.resize((picture.width * 2 // 3, picture.height * 2 // 3)).save(copy, "JPEG", quality=70)
    hits = _search(idx, Term(IMAGE, "copy.jpg", data=copy.getvalue()), rerank_k=20)
    assert hits[0].path == str(original)
    assert all(h.itm_score is None for h in hits)  # a picture-only query is ordered by CLIP
    by_id = _search(idx, Term(INDEXED, image_id=hits[0].file_id), limit=3)
    assert by_id[0].path == str(original) and by_id[0].clip_score == pytest.approx(1.0, abs=1e-3)


def test_not_pushes_away_what_it_names(library) -> None:
    idx, _ = library
    colours = ("red", "green", "blue", "yellow", "purple", "orange")

    def kinds(hits: list) -> list[str]:  # p{i}: colours[i % 6], shapes[i % 3]
        return [f"{colours[int(Path(h.path).stem[1:]) % 6]} {('circle', 'square', 'triangle')[int(Path(h.path).stem[1:]) % 3]}"
                for h in hits]

    plain = kinds(_search(idx, words("a triangle"), limit=10, rerank_k=60))
    pushed = kinds(_search(idx, words("a triangle"), words("a blue triangle", negative=True), limit=10, rerank_k=60))
    assert plain.count("blue triangle") >= 5, plain
    assert "blue triangle" not in pushed and sum(k.endswith("triangle") for k in pushed) >= 5, pushed
    circles = kinds(_search(idx, words("a circle"), words("a red circle", negative=True), limit=10, rerank_k=60))
    assert "red circle" not in circles, circles
    with pytest.raises(ConfigError, match="not only what to leave out"):
        _search(idx, words("a red circle", negative=True))


def test_a_folder_holding_one_percent_still_fills_the_page(library) -> None:
    idx, paths = library
    rare = str(paths["rare0"].parent)
    hits = _search(idx, words("a red square"), folders=(rare,), limit=2, rerank_k=0)
    assert len(hits) == 2 and all(h.path.startswith(rare + "/") for h in hits)
    subtree = _search(idx, words("a circle"), folders=(str(paths["p1"].parents[1]),), limit=50, rerank_k=0)
    assert len(subtree) == 50 and all("/trips/" in h.path for h in subtree)
    both = _search(idx, words("a star"), folders=(rare, str(paths["exif"].parent)), limit=10, rerank_k=0)
    assert {Path(h.path).parent.name for h in both} == {"rare", "cams"} and len(both) == 5


def test_dates_take_the_whole_period_named_and_exif_first(library) -> None:
    idx, paths = library
    summer = _search(idx, words("a circle"), date_from="2019-06", date_until="2019-08", limit=200, rerank_k=0)
    assert summer and all(datetime(2019, 6, 1) <= h.date < datetime(2019, 9, 1) for h in summer)
    expected = sum(1 for i in range(240) if 6 <= 1 + i % 12 <= 8)  # every picture dated June-August
    assert len(summer) == expected
    exif = _search(idx, Term(INDEXED, image_id=_id(idx, paths["exif"])), date_from="2018-06-30",
                   date_until="2018-06-30", limit=5)
    assert [h.path for h in exif] == [str(paths["exif"])]
    assert exif[0].date_source == "exif" and exif[0].date == datetime(2018, 6, 30, 23, 59, 59)
    with pytest.raises(ConfigError, match="YYYY"):
        _search(idx, words("a star"), date_from="June")


def test_camera_matches_make_or_model_in_any_case(library) -> None:
    idx, paths = library
    canon = _search(idx, words("a star"), camera="CANON", limit=10, rerank_k=0)
    assert [h.path for h in canon] == [str(paths["exif"])] and canon[0].camera == "Canon EOS R6"
    assert [h.path for h in _search(idx, words("a star"), camera="z 6", limit=10)] == [str(paths["nikon"])]
    assert _search(idx, words("a star"), camera="leica", limit=10) == []


def test_sort_and_offset_page_the_same_result_set(library) -> None:
    idx, _ = library
    query = (words("a blue triangle"),)
    twenty = _search(idx, *query, limit=20, rerank_k=10)
    second = _search(idx, *query, limit=10, offset=10, rerank_k=10)
    assert [h.path for h in second] == [h.path for h in twenty[10:]]
    newest = _search(idx, *query, limit=20, sort="newest", rerank_k=10)
    assert {h.path for h in newest} == {h.path for h in twenty}
    assert [h.date for h in newest] == sorted((h.date for h in newest), reverse=True)
    oldest = _search(idx, *query, limit=20, sort="oldest", rerank_k=10)
    assert [h.path for h in oldest] == [h.path for h in reversed(newest)] or \
        [h.date for h in oldest] == sorted(h.date for h in oldest)


def test_filters_alone_list_pictures_newest_first(library) -> None:
    idx, paths = library
    listed = _search(idx, folders=(str(paths["rare0"].parent),), sort="newest", limit=10)
    assert [h.path for h in listed] == [str(paths[f"rare{i}"]) for i in (2, 1, 0)]
    assert all(h.score is None and h.clip_score is None for h in listed)
    page = _search(idx, date_from="2019", date_until="2019", sort="oldest", limit=5, offset=5)
    everything = _search(idx, date_from="2019", date_until="2019", sort="oldest", limit=10)
    assert [h.path for h in page] == [h.path for h in everything[5:]]


def _id(idx: LocalIndex, path: Path) -> int:
    hits = _search(idx, Term(IMAGE, str(path), data=path.read_bytes()), limit=1)
    assert hits[0].path == str(path)
    return hits[0].file_id


def test_an_old_index_is_upgraded_when_a_query_opens_it(tmp_path: Path) -> None:
    """An index made before dates and cameras were kept (no payloads, no date columns) answers a
    filtered query right away: opening it backfills them, without embedding anything."""
    from sqlalchemy import text

    from imgsearch.stores import open_stores

    photos, rng = tmp_path / "photos", random.Random(3)
    canon = _write(photos, "canon", [("star", "red", "large")], rng, when=datetime(2018, 6, 30, 12), exif=True,
                   camera="canon")
    _write(photos, "plain", [("star", "red", "large")], rng, when=datetime(2020, 1, 1))
    settings = Settings(home=tmp_path / "home", models="tiny", decode_workers=1)
    run_index(settings, [photos], captions=False)
    from imgsearch.models.profiles import model_facts, resolve_profile

    with open_stores(settings, model_facts(resolve_profile(settings)), _dim(settings)) as stores:
        ids = sorted(stores.vectors.all_ids())
        full = stores.vectors.payloads(ids)
        stores.vectors.set_payload(ids, [{"sha256": full[i]["sha256"]} for i in ids])
        with stores.catalog.engine.begin() as conn:
            conn.execute(text("update files set date = null, date_source = null, camera = null"))
    with LocalIndex(settings) as idx:
        hits = _search(idx, words("a red star"), camera="canon", date_from="2018", limit=5, rerank_k=0)
        assert [h.path for h in hits] == [str(canon)] and hits[0].date_source == "exif"
        assert idx._models is None  # no model was loaded to upgrade it


def _dim(settings: Settings) -> int:
    from imgsearch.stores import recorded_dim

    dim = recorded_dim(settings)
    assert dim is not None
    return dim
