"""The held-out collection: relation triplets with their hard negatives, relevance from the
spec's rule on the written manifest, and the same collection for the same seed. No models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imgsearch.evaluation.collection import QUERIES_FILE, Collection, build_collection, load_collection
from imgsearch.shapes.render import load_manifest, swapped_colours
from imgsearch.shapes.world import FLIPPED, Scene, matches, parse

N, SEED = 48, 3101


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    return build_collection(tmp_path_factory.mktemp("eval") / "pictures", N, SEED)


def _kinds(scene: Scene) -> list[tuple[str, str, str]]:
    return [(o.shape, o.colour, o.size) for o in scene.objects]


def test_writes_the_pictures_manifest_and_queries(built: Collection) -> None:
    files = {p.name for p in built.folder.iterdir()}
    assert len(built.scenes) == N
    assert files == set(built.scenes) | {"scenes.json", QUERIES_FILE}
    assert load_manifest(built.folder) == built.scenes
    assert json.loads((built.folder / QUERIES_FILE).read_text())["seed"] == SEED


def test_relation_queries_find_exactly_their_positive_within_the_triplet(built: Collection) -> None:
    relation = [q for q in built.queries if q.kind == "relation"]
    assert relation and all(q.triplet is not None for q in relation)
    for q in relation:
        t = q.triplet
        assert t is not None
        assert {t.positive, t.swapped, t.flipped} <= set(built.scenes)
        assert t.positive in q.relevant
        assert t.swapped not in q.relevant and t.flipped not in q.relevant


def test_hard_negatives_are_the_swapped_and_the_flipped_picture(built: Collection) -> None:
    for q in built.queries:
        if q.triplet is None:
            continue
        t = q.triplet
        pos, swapped, flipped = (built.scenes[n] for n in (t.positive, t.swapped, t.flipped))
        assert pos.objects[0].colour != pos.objects[1].colour  # else the swap would change nothing
        assert swapped == swapped_colours(pos)
        assert pos.relation is not None and _kinds(flipped) == _kinds(pos)
        assert flipped.relation == FLIPPED[pos.relation]


def test_about_half_of_the_pictures_are_in_triplets(built: Collection) -> None:
    in_triplets = {n for q in built.queries if q.triplet
                   for n in (q.triplet.positive, q.triplet.swapped, q.triplet.flipped)}
    assert 0.4 <= len(in_triplets) / N <= 0.6
    sizes = {len(s.objects) for n, s in built.scenes.items() if n not in in_triplets}
    assert sizes == {1, 2}  # single objects and random pairs as distractors


def test_relevance_is_the_spec_rule_on_the_written_manifest(built: Collection) -> None:
    on_disk = load_manifest(built.folder)
    for q in built.queries:
        assert q.relevant == {n for n, s in on_disk.items() if matches(q.text, s)}, q.text


def test_attribute_queries_each_find_something_and_some_name_a_size(built: Collection) -> None:
    attribute = [q for q in built.queries if q.kind == "attribute"]
    assert len(attribute) >= 4 and all(q.relevant for q in attribute)
    assert all(parse(q.text).relation is None for q in attribute)
    assert any("size" in parse(q.text).first for q in attribute)
    assert any("size" not in parse(q.text).first for q in attribute)
    # attributes match an object beside another one too
    assert any(len(built.scenes[n].objects) == 2 for q in attribute for n in q.relevant)


def test_relation_queries_are_phrased_both_ways_round(built: Collection) -> None:
    relations = {parse(q.text).relation for q in built.queries if q.kind == "relation"}
    assert relations & {"left of", "above"} and relations & {"right of", "below"}


def test_same_seed_same_collection_other_seed_another(built: Collection, tmp_path: Path) -> None:
    again = build_collection(tmp_path / "again", N, SEED)
    assert again.scenes == built.scenes and again.queries == built.queries
    for name in built.scenes:
        assert (again.folder / name).read_bytes() == (built.folder / name).read_bytes()
    other = build_collection(tmp_path / "other", N, SEED + 1)
    assert other.scenes != built.scenes


def test_load_collection_reads_back_what_was_built(built: Collection) -> None:
    loaded = load_collection(built.folder)
    assert loaded.scenes == built.scenes and loaded.queries == built.queries and loaded.seed == SEED


def test_a_folder_with_files_in_it_is_refused(tmp_path: Path) -> None:
    (tmp_path / "old.jpg").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        build_collection(tmp_path, N, SEED)


def _axis_ratio(scene: Scene) -> float:
    a, b = scene.objects
    dx, dy = abs(a.cx - b.cx), abs(a.cy - b.cy)
    return max(dx, dy) / max(min(dx, dy), 1e-9)


def test_near_diagonal_pairs_only_when_asked(built: Collection, tmp_path: Path) -> None:
    """By default a pair's larger gap is at least 1.3 times the smaller (clear-cut relations);
    --min-axis-ratio 1.0 lets in every placement the spec allows, hard negatives included."""
    pairs = [s for s in built.scenes.values() if len(s.objects) == 2]
    assert pairs and min(_axis_ratio(s) for s in pairs) >= 1.3
    wide = build_collection(tmp_path / "any", 120, SEED, min_axis_ratio=1.0)
    pairs = [s for s in wide.scenes.values() if len(s.objects) == 2]
    assert sum(_axis_ratio(s) < 1.3 for s in pairs) >= 3  # about one pair in six, drawn uniformly
    for q in wide.queries:  # the triplets still hold: exactly the positive matches among the three
        if q.triplet is not None:
            names = (q.triplet.positive, q.triplet.swapped, q.triplet.flipped)
            assert [matches(q.text, wide.scenes[n]) for n in names] == [True, False, False]
