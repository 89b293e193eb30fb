"""`imgsearch concept add | list | show | remove` through Typer's runner, over a small indexed
shapes folder (tiny models): the round trip, examples outside the index, bad examples, retraining."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from imgsearch.cli.app import app
from imgsearch.shapes.render import sample_scene, write_scene
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """40 shapes pictures, 10 of them holding a star, indexed (no captions) into their own home."""
    from conftest import make_shapes

    base = tmp_path_factory.mktemp("concepts")
    photos, rng = base / "photos", random.Random(3)
    truth = make_shapes(photos / "mixed", 30, seed=23)
    (photos / "mixed" / "scenes.json").unlink()
    (photos / "stars").mkdir()
    stars = [write_scene(photos / "stars", f"star{i}", sample_scene(rng, objects=[("star", c, "large")]), rng)
             for i, c in enumerate(["red", "blue", "green", "yellow", "purple", "orange", "red", "blue", "green",
                                    "yellow"])]
    plain = sorted(str(photos / "mixed" / n) for n, s in truth.items() if all(o.shape != "star" for o in s.objects))
    home = base / "home"
    code, _, err = _run("index", str(photos), "--no-captions", "--no-ocr", "--json", home=home)
    assert code == 0, err
    return {"home": home, "stars": [str(p) for p in stars], "plain": plain, "base": base}


def _run(*args: str, home: Path) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--home", str(home), "--models", "tiny"], env={"COLUMNS": "300"})
    return result.exit_code, result.stdout, result.stderr


def _json(*args: str, home: Path) -> object:
    code, out, err = _run(*args, "--json", home=home)
    assert code == 0, err
    return json.loads(out)


def _probe(home: Path, name: str, paths: list[str]) -> np.ndarray:
    """The stored concept's probabilities for these indexed pictures."""
    from imgsearch.library.local import LocalIndex
    from imgsearch.settings import Settings
    from imgsearch.stores.concepts import ConceptStore

    with LocalIndex(Settings(home=home, models="tiny")) as idx:
        concept = idx.concept(name)
        stores = idx._open_stores()
        ids = [i for i, _ in ConceptStore(stores.catalog).indexed(paths).values()]
        return concept.probability(np.stack(list(stores.vectors.get_vectors(ids).values())))


def test_add_list_show_remove_round_trip(library: dict) -> None:
    home, stars, plain = library["home"], library["stars"], library["plain"]
    added = _json("concept", "add", "stars", *stars[:4], "--not", plain[0], "--not", plain[1], home=home)
    concept = added["concept"]
    assert added["added_positives"] == 4 and added["added_negatives"] == 2 and not added["retrained"]
    assert concept["positives"] == stars[:4] and concept["negatives"] == plain[:2]
    assert concept["clip_model"] and concept["dim"] > 0 and "weights" not in concept
    assert concept["random_negatives"] == 40 - 4 - 2  # every other picture of this small library
    assert [c["name"] for c in _json("concept", "list", home=home)] == ["stars"]
    shown = _json("concept", "show", "stars", home=home)
    assert shown == concept
    code, out, _ = _run("concept", "show", "stars", home=home)
    assert code == 0 and "example: " + stars[0] in out and "not: " + plain[0] in out
    # the held-out stars score above the plain pictures
    assert _probe(home, "stars", stars[4:]).mean() > _probe(home, "stars", plain[2:]).mean()
    assert _json("concept", "remove", "stars", home=home) == {"removed": "stars"}
    assert _json("concept", "list", home=home) == []
    code, _, err = _run("concept", "show", "stars", home=home)
    assert code == 2 and "no concept named 'stars'" in err
    code, _, err = _run("concept", "remove", "stars", home=home)
    assert code == 2 and "no concept named" in err


def test_a_folder_is_every_picture_in_it(library: dict) -> None:
    home, stars = library["home"], library["stars"]
    added = _json("concept", "add", "folder-stars", str(Path(stars[0]).parent), home=home)
    assert sorted(added["concept"]["positives"]) == sorted(stars)
    _run("concept", "remove", "folder-stars", home=home)


def test_an_example_outside_the_index_is_embedded_on_the_fly(library: dict) -> None:
    home, stars = library["home"], library["stars"]
    rng = random.Random(8)
    outside = library["base"] / "elsewhere"
    outside.mkdir(exist_ok=True)
    new = write_scene(outside, "new-star", sample_scene(rng, objects=[("star", "purple", "small")]), rng)
    added = _json("concept", "add", "outside", stars[0], str(new), home=home)
    assert added["added_positives"] == 2 and added["concept"]["positives"] == [stars[0], new.name]
    # its vector is the one the indexer would have stored: the same file indexed gives the same score
    from imgsearch.library.local import LocalIndex
    from imgsearch.settings import Settings
    from imgsearch.stores.concepts import ConceptStore

    with LocalIndex(Settings(home=home, models="tiny")) as idx:
        examples = ConceptStore(idx._open_stores().catalog).examples("outside")
        embedded = next(e for e in examples if not e.indexed)
        again = idx.models.clip.encode_images([__import__("imgsearch.imaging", fromlist=["decode"]).decode(
            new.read_bytes(), min_side=idx.models.clip.image_size).image])[0]
        assert np.allclose(embedded.vector, again, atol=1e-4)
    _run("concept", "remove", "outside", home=home)


def test_a_bad_example_is_skipped_with_a_message(library: dict) -> None:
    home, stars = library["home"], library["stars"]
    junk = library["base"] / "junk"
    junk.mkdir(exist_ok=True)
    (junk / "notes.jpg").write_bytes(b"not a picture at all")
    (junk / "notes.txt").write_text("hello")
    code, out, err = _run("concept", "add", "with-junk", stars[0], stars[1], str(junk / "notes.jpg"),
                          str(junk / "notes.txt"), str(junk / "missing.png"), home=home)
    assert code == 0, err
    flat = " ".join(err.split())
    for name in ("notes.jpg", "notes.txt", "missing.png"):
        assert f"skipped {junk / name}" in flat
    assert "no such file or folder" in flat
    assert "trained 'with-junk' with 2 new examples" in " ".join(out.split())
    code, _, err = _run("concept", "add", "only-junk", str(junk / "notes.jpg"), home=home)
    assert code == 2 and "no example picture of 'only-junk' could be used" in " ".join(err.split())
    code, _, err = _run("concept", "add", "nothing", str(junk / "missing.png"), home=home)
    assert code == 2 and "no example picture found" in " ".join(err.split())
    assert [c["name"] for c in _json("concept", "list", home=home)] == ["with-junk"]
    _run("concept", "remove", "with-junk", home=home)


def test_adding_examples_retrains_keeping_the_old_ones(library: dict) -> None:
    home, stars, plain = library["home"], library["stars"], library["plain"]
    first = _json("concept", "add", "grow", *stars[:2], home=home)["concept"]
    before = _probe(home, "grow", stars[5:])
    second = _json("concept", "add", "grow", *stars[2:5], "--not", plain[0], home=home)
    assert second["retrained"] and second["added_positives"] == 3
    grown = second["concept"]
    assert grown["positives"] == stars[:5] and grown["negatives"] == [plain[0]]
    assert grown["created_at"] == first["created_at"] and grown["updated_at"] >= first["updated_at"]
    assert not np.allclose(_probe(home, "grow", stars[5:]), before)
    _run("concept", "remove", "grow", home=home)


@pytest.mark.parametrize("name", ["bad/name", "_x", "a b", "x" * 65])
def test_names_are_checked_before_anything_is_read(library: dict, name: str) -> None:
    code, _, err = _run("concept", "add", name, library["stars"][0], home=library["home"])
    assert code == 2 and "a concept name is" in " ".join(err.split())
