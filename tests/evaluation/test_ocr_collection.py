"""The OCR evaluation: the rendered text collection is what its manifest says (checked by
structure, by determinism and by reading it back), the scoring counts words and false text the
way the report says, and the real reader clears a measured recall floor on a small collection.
No timings are asserted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgsearch.evaluation import ocr as ev
from imgsearch.evaluation.ocr import (
    DEFAULT_FONT, MANIFEST, VOCABULARY, OcrScores, TextCollection, build_text_collection,
    load_text_collection, ocr_scores, tokens, words_found,
)
from imgsearch.ocr import TextReader, load_reader

N, SEED = 12, 6
# Measured: the reader found 62 of the 66 words (0.94) on this collection, no text on its 3
# pictures without any. The floor leaves a margin for other CPUs' arithmetic.
RECALL_FLOOR = 0.85


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> TextCollection:
    return build_text_collection(tmp_path_factory.mktemp("ocr") / "pictures", N, SEED)


@pytest.fixture(scope="module")
def reader() -> TextReader:
    return load_reader()


@pytest.fixture(scope="module")
def scores(built: TextCollection, reader: TextReader) -> OcrScores:
    return ocr_scores(built, reader)


def test_writes_the_pictures_and_a_manifest_of_their_words(built: TextCollection) -> None:
    assert {p.name for p in built.folder.iterdir()} == set(built.pictures) | {MANIFEST}
    manifest = json.loads((built.folder / MANIFEST).read_text())
    assert manifest["seed"] == SEED
    assert {name: p["words"] for name, p in manifest["pictures"].items()} == {
        name: pic.words for name, pic in built.pictures.items()}
    assert load_text_collection(built.folder) == built


def test_a_quarter_without_text_and_the_rest_as_specified(built: TextCollection) -> None:
    without = [p for p in built.pictures.values() if not p.lines]
    assert len(without) == round(N * ev.NO_TEXT_SHARE)
    vocabulary = {w.lower() for w in VOCABULARY}
    for pic in built.pictures.values():
        if not pic.lines:
            continue
        assert 1 <= len(pic.lines) <= 3
        assert all(1 <= len(line.split()) <= 4 for line in pic.lines)
        assert all(w.lower() in vocabulary and len(w) >= 4 for w in pic.words)
        assert abs(pic.angle) <= 15.0
        assert pic.size >= 8


def test_pictures_are_photo_like_not_plain(built: TextCollection) -> None:
    for name in built.pictures:
        a = np.asarray(Image.open(built.path(name)).convert("RGB"), dtype=float)
        assert a.std() > 10  # gradients, shapes and noise
        assert (a.min(axis=2) > 240).mean() < 0.5  # not a white page


def test_same_seed_same_pictures(built: TextCollection, tmp_path: Path) -> None:
    again = build_text_collection(tmp_path / "again", N, SEED)
    assert again.pictures == built.pictures
    for name in built.pictures:
        assert (again.folder / name).read_bytes() == built.path(name).read_bytes()
    other = build_text_collection(tmp_path / "other", 4, SEED + 1)
    assert [p.lines for p in other.pictures.values()] != [p.lines for p in list(built.pictures.values())[:4]]


def test_pillows_own_font_is_enough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ev, "FONT_DIRS", (tmp_path / "no-fonts-here",))
    assert ev.available_fonts() == [DEFAULT_FONT]
    col = build_text_collection(tmp_path / "pictures", 6, 5)
    assert {p.font for p in col.pictures.values() if p.lines} == {DEFAULT_FONT}


def test_the_manifest_matches_what_was_drawn(built: TextCollection, reader: TextReader) -> None:
    """Read back: every text picture shows some of its manifest's words and hardly anything else
    (a read word must be part of the written lines, as words run together sometimes are); the
    pictures listed without text show none."""
    for name, pic in built.pictures.items():
        text = reader.read(Image.open(built.path(name)))
        if not pic.lines:
            assert text is None, name
            continue
        assert words_found(pic.words, text) >= 1, (name, pic.lines, text)
        written = "".join(w.lower() for w in pic.words)
        read = tokens(text)
        assert sum(t in written for t in read) >= 0.8 * len(read), (name, pic.lines, text)


def test_recall_on_a_small_collection_clears_the_floor(scores: OcrScores) -> None:
    assert scores.pictures == N
    assert scores.recall >= RECALL_FLOOR, scores.misses
    assert scores.false_text == 0, scores.misses
    assert scores.seconds_text > 0 and scores.seconds_no_text > 0


def test_scoring_counts_words_case_insensitively_and_false_text(built: TextCollection) -> None:
    """A reader that returns the manifest's words in lower case, drops the last word of each text
    picture and reads 'noise' on the pictures without text."""
    def key(image: Image.Image) -> bytes:
        return image.convert("RGB").tobytes()[:4096]

    answers = {}
    for name, pic in built.pictures.items():
        with Image.open(built.path(name)) as im:
            answers[key(im)] = " ".join(w.lower() for w in pic.words[:-1]) if pic.lines else "noise"

    class Echo:
        id = "echo"

        def read(self, image: Image.Image) -> str | None:
            return answers[key(image)]

    s = ocr_scores(built, Echo(), warmup=False)
    text_pics = [p for p in built.pictures.values() if p.lines]
    assert s.reader == "echo" and s.text_pictures == len(text_pics)
    assert s.words == sum(len(p.words) for p in text_pics)
    assert s.words_found == s.words - len(text_pics)
    assert s.false_text == s.no_text_pictures == N - len(text_pics)
    assert s.extra_tokens == 0
    report = ev.markdown(s, "test machine")
    assert f"({s.words_found}/{s.words})" in report and "false text" in report


def test_words_found_counts_repeats_and_ignores_punctuation() -> None:
    assert words_found(["Open", "open", "Daily"], "OPEN, daily!") == 2
    assert words_found(["Open", "open"], "open open") == 2
    assert words_found(["Cafe"], None) == 0
    assert tokens("CAFE MOZART\nOpen-daily") == ["cafe", "mozart", "open", "daily"]


def test_main_prints_and_saves_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ev.main([str(tmp_path / "out"), "--n", "4", "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "word recall" in printed and "pictures/s without text" in printed
    saved = json.loads((tmp_path / "out" / "ocr.json").read_text())
    assert saved["pictures"] == 4 and 0.0 <= saved["recall"] <= 1.0
    assert (tmp_path / "out" / "ocr.md").read_text() == printed.rstrip("\n") + "\n"
