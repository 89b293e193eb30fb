"""The vocabulary file's grammar: sections are separate softmaxes, classes give tags (several, or
none), templates and thresholds are inherited; mistakes name the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch.models.profiles import DEFAULT, resolve_profile
from imgsearch.settings import Settings
from imgsearch.tags import VocabularyError, load_vocabulary, parse_vocabulary


def test_sections_classes_templates_and_thresholds() -> None:
    v = parse_vocabulary("""
        threshold: 0.3            # for every section that sets none
        template: a photo of a {}.
        [animals]
        puppy | dog -> dog, animal
        cat -> cat, animal
        a street | a room ->      # somewhere for the mass to go: no tag
        [light]
        threshold: 0.6
        template: a {} picture
        template: a {} photo
        night
    """, "mine.txt")
    animals, light = v.sections
    assert (animals.name, animals.threshold, animals.templates) == ("animals", 0.3, ("a photo of a {}.",))
    assert [(c.phrases, c.tags) for c in animals.classes] == [
        (("puppy", "dog"), ("dog", "animal")), (("cat",), ("cat", "animal")), (("a street", "a room"), ())]
    assert (light.threshold, light.templates, light.classes[0].tags) == (0.6, ("a {} picture", "a {} photo"), ("night",))
    assert v.labels == ["animal", "cat", "dog", "night"]
    assert v.digest != parse_vocabulary("cat", "other").digest


@pytest.mark.parametrize("text, where, why", [
    ("template: a photo", "line 1", "holds {} once"),
    ("threshold: high", "line 1", "threshold is a number"),
    ("threshold: 0", "line 1", "above 0"),
    ("dog\ncat -> c:a:t", "line 2", "not a usable tag"),
    ("dog -> \"quoted\"", "line 1", "not a usable tag"),
    (" -> dog", "line 1", "a class is"),
    ("# nothing but a comment\n[empty]", "mine.txt", "names no classes"),
])
def test_mistakes_name_the_file_and_the_line(text: str, where: str, why: str) -> None:
    with pytest.raises(VocabularyError) as e:
        parse_vocabulary(text, "mine.txt")
    assert "mine.txt" in str(e.value) and where in str(e.value) and why in str(e.value)


def test_each_profile_has_a_vocabulary_and_a_users_file_replaces_it(tmp_path: Path) -> None:
    tiny = load_vocabulary(Path(resolve_profile(Settings(models="tiny")).tags))
    assert {"circle", "square", "triangle", "star", "red", "purple", "black background"} <= set(tiny.labels)
    everyday = load_vocabulary(Path(DEFAULT.tags))
    assert len(everyday.sections[0].classes) >= 200 and {"beach", "dog", "wedding", "receipt"} <= set(everyday.labels)
    assert len(everyday.sections[0].templates) > 1  # prompt ensembling, as in the CLIP paper
    mine = tmp_path / "mine.txt"
    mine.write_text("a red circle -> red circle\n")
    assert resolve_profile(Settings(models="tiny", tags_file=mine)).tags == str(mine)
    with pytest.raises(VocabularyError, match="cannot read the tag vocabulary"):
        load_vocabulary(tmp_path / "missing.txt")


def test_the_classes_are_embedded_once_and_kept(tmp_path: Path) -> None:
    """A run with nothing to tag embeds nothing; the first tagging embeds the vocabulary and keeps
    it beside the index; another process reuses it; another vocabulary gets its own."""
    import numpy as np

    from imgsearch.models import Models
    from imgsearch.tags import Tagger

    clip = Models(Settings(home=tmp_path, models="tiny")).clip
    calls, loads = [], []

    class Counting:
        model, model_id = clip.model, clip.model_id

        def __init__(self):
            loads.append(1)

        def encode_templated(self, template, fills):
            calls.append(len(fills))
            return clip.encode_templated(template, fills)

    vocabulary = load_vocabulary(Path(resolve_profile(Settings(models="tiny")).tags))
    first = Tagger(vocabulary, clip.model_id, Counting, cache_dir=tmp_path)
    assert calls == [] and loads == [] and not list(tmp_path.glob("tag-classes-*.npz"))
    picture = clip.encode_texts(["a red circle on a black background"])
    tags = first.tag(picture)[0]
    assert {"red", "circle", "black background"} <= set(tags) and calls
    embedded = len(calls)
    again = Tagger(vocabulary, clip.model_id, Counting, cache_dir=tmp_path)
    assert again.tag(picture) == first.tag(picture) and len(calls) == embedded  # read back, not embedded
    assert len(loads) == 1 and again.scale == first.scale  # no CLIP asked for: its temperature is kept
    other = Tagger(parse_vocabulary("template: a {}\nred star -> red, star\nblue star -> blue, star\n"),
                   clip.model_id, Counting, cache_dir=tmp_path)
    assert set(other.tag(picture)[0]) <= {"red", "star", "blue"} and len(calls) > embedded
    assert len(list(tmp_path.glob("tag-classes-*.npz"))) == 2
    for kept in tmp_path.glob("tag-classes-*.npz"):
        kept.write_bytes(b"damaged")
    assert Tagger(vocabulary, clip.model_id, Counting, cache_dir=tmp_path).tag(picture) == first.tag(picture)
    assert np.isfinite(first.scale) and first.scale > 1
