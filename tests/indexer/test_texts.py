"""The text phase on real files: the words written in a picture are read once (copies reuse
them), kept in the catalog, found by a search (hybrid and text modes, every word in the picture
counting as a match) and shown in the hit; pictures without text get none; `--no-ocr` skips it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from conftest import make_shapes
from imgsearch.library.local import LocalIndex
from imgsearch.searcher.request import SearchRequest, words
from imgsearch.settings import Settings


def _sign(path: Path, lines: list[str], angle: float = 8.0) -> None:
    """Dark words on a light board, turned a little, on a busy background."""
    board = Image.new("RGB", (520, 200), (236, 228, 205))
    draw = ImageDraw.Draw(board)
    font = ImageFont.load_default(size=54)
    for i, line in enumerate(lines):
        draw.text((24, 20 + 82 * i), line, fill=(30, 30, 40), font=font)
    board = board.rotate(angle, expand=True, fillcolor=(90, 120, 80))
    picture = Image.new("RGB", (760, 460), (70, 110, 60))
    ImageDraw.Draw(picture).ellipse((500, 300, 740, 450), fill=(180, 60, 50))
    picture.paste(board, (60, 60))
    picture.save(path, quality=92)


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("texts")
    photos = base / "photos"
    make_shapes(photos, 4, seed=3)
    (photos / "scenes.json").unlink()
    _sign(photos / "cafe.jpg", ["CAFE MOZART", "Open daily"])
    _sign(photos / "museum.jpg", ["MUSEUM TICKET"], angle=-6)
    (photos / "copies").mkdir()
    shutil.copy(photos / "cafe.jpg", photos / "copies" / "cafe-again.jpg")
    settings = Settings(home=base / "home", models="tiny", batch_size=8, decode_workers=2, ocr=True)
    idx = LocalIndex(settings)
    report = idx.index([photos])
    yield idx, photos, report
    idx.close()


def test_the_words_in_a_picture_are_read_once_and_kept(library) -> None:
    idx, photos, report = library
    assert report["texts_read"] == 7
    catalog = idx._open_stores().catalog
    infos = {Path(i.path).name: i for i in catalog.get(catalog.vector_ids()).values()}
    assert "MOZART" in (infos["cafe.jpg"].text or "").upper() and "DAILY" in infos["cafe.jpg"].text.upper()
    assert infos["cafe-again.jpg"].text == infos["cafe.jpg"].text  # same content: read once
    assert "TICKET" in (infos["museum.jpg"].text or "").upper()
    assert all(i.text is None for name, i in infos.items() if name.startswith("img"))
    assert catalog.needs_text(10) == []  # the next run reads nothing again


def test_a_word_written_in_a_picture_finds_it_first(library) -> None:
    idx, photos, _ = library
    hits = idx.search(SearchRequest((words("mozart"),), explain=True))
    assert {Path(h.path).name for h in hits} == {"cafe.jpg", "cafe-again.jpg"}
    assert all(h.match == 1.0 and "mozart" in h.explain["words"]["text"] for h in hits)
    assert "MOZART" in (hits[0].text or "").upper() and hits[0].as_json()["text"] == hits[0].text
    ticket = idx.search(SearchRequest((words("museum ticket"),), mode="text", rerank_k=0))
    assert [Path(h.path).name for h in ticket] == ["museum.jpg"]
    assert idx.search(SearchRequest((words("mozart"),), mode="vector")) == []  # CLIP cannot read it


def test_no_ocr_leaves_pictures_unread(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    _sign(photos / "cafe.jpg", ["CAFE MOZART"])
    with LocalIndex(Settings(home=tmp_path / "home", models="tiny", ocr=True)) as idx:
        assert idx.index([photos], captions=False, texts=False)["texts_read"] == 0
        catalog = idx._open_stores().catalog
        assert [Path(f.path).name for f in catalog.needs_text(10)] == ["cafe.jpg"]
        assert idx.index([photos], captions=False)["texts_read"] == 1  # a later run reads it
