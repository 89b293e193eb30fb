"""The relevance cutoff and hybrid retrieval on a real index (bundled tiny models): only
pictures likely to match come back, nonsense finds nothing, a folder's name finds its pictures,
the rerank goes deeper when matches keep coming, and each hit can say why it matched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from imgsearch.library.local import LocalIndex
from imgsearch.searcher.limits import QueryLimitError
from imgsearch.searcher.request import SearchRequest, words
from imgsearch.settings import Settings
from imgsearch.shapes.render import write_collection
from imgsearch.shapes.world import Obj, Scene


def _one(colour: str, shape: str, background: str = "white") -> Scene:
    return Scene(width=200, height=160, background=background,
                 objects=(Obj(shape, colour, "large", 100, 80, 50, 0.0),))


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory):
    """30 red circles, 5 blue squares under lisbon/, 8 other shapes under misc/."""
    base = tmp_path_factory.mktemp("relevance")
    photos = base / "photos"
    write_collection(photos / "circles", [_one("red", "circle", bg) for bg in ("white", "gray", "black") * 10], 1)
    write_collection(photos / "lisbon", [_one("blue", "square") for _ in range(5)], 2)
    write_collection(photos / "misc", [_one(c, s) for c, s in (("green", "triangle"), ("yellow", "star"),
                                                              ("purple", "triangle"), ("orange", "star"),
                                                              ("green", "star"), ("yellow", "triangle"),
                                                              ("purple", "star"), ("orange", "triangle"))], 3)
    for f in photos.rglob("scenes.json"):
        f.unlink()
    idx = LocalIndex(Settings(home=base / "home", models="tiny", batch_size=16, decode_workers=2))
    idx.index([photos])
    yield idx, photos
    idx.close()


def _ask(idx: LocalIndex, text: str, **kw) -> list:
    return idx.search(SearchRequest((words(text),), **kw))


def _folders(hits: list) -> list[str]:
    return [Path(h.path).parent.name for h in hits]


def test_nonsense_finds_nothing_and_no_cutoff_pads_the_page(library) -> None:
    idx, _ = library
    assert _ask(idx, "a tax report") == []  # the index's default cutoff applies
    padded = _ask(idx, "a tax report", min_match=0.0, limit=10)
    assert len(padded) == 10 and all(h.match is not None and h.match < 0.5 for h in padded)


def test_only_matches_come_back_each_with_its_probability(library) -> None:
    idx, _ = library
    hits = _ask(idx, "a blue square", limit=20)
    assert _folders(hits) == ["lisbon"] * 5
    assert all(h.match is not None and h.match >= 0.5 and h.match == h.itm_score for h in hits)
    strict = _ask(idx, "a blue square", min_match=0.999999)
    assert len(strict) < 5 and all(h.match >= 0.999999 for h in strict)


def test_the_rerank_goes_deeper_while_matches_keep_coming(library) -> None:
    """Within a budget of work: cold, two batches' worth; with the rerank cache filled, up to
    ten batches (cached pictures cost an eighth)."""
    idx, photos = library
    shutil.rmtree(idx.settings.rerank_cache_dir, ignore_errors=True)  # earlier tests warmed some
    cold = _ask(idx, "a red circle", rerank_k=4, limit=100)
    assert 4 < len(cold) <= 8 and set(_folders(cold)) == {"circles"}  # past the first 4, within budget
    idx.index([photos], precompute_rerank=True)
    warm = _ask(idx, "a red circle", rerank_k=4, limit=100)
    assert len(warm) >= 25 and set(_folders(warm)) == {"circles"}  # far past the first 4
    assert all(h.itm_score is not None for h in warm)
    unbounded = _ask(idx, "a red circle", rerank_k=4, limit=100, min_match=0.0)
    assert sum(h.itm_score is not None for h in unbounded) == 4  # without a cutoff: rerank_k only


def test_a_folders_name_ranks_its_pictures_first(library) -> None:
    idx, _ = library
    hybrid = _ask(idx, "Lisbon", limit=8)
    assert _folders(hybrid)[:5] == ["lisbon"] * 5
    assert all(h.match == 1.0 for h in hybrid[:5])  # a user's own label counts as a match
    text = _ask(idx, "lisbon", mode="text", rerank_k=0)
    assert _folders(text) == ["lisbon"] * 5 and all(h.clip_score is None for h in text)
    vector = _ask(idx, "lisbon", mode="vector", min_match=0.0, limit=8)
    assert _folders(vector)[:5] != ["lisbon"] * 5  # CLIP alone cannot read a folder's name


def test_captions_count_in_hybrid_and_explain_says_where(library) -> None:
    idx, _ = library
    hits = _ask(idx, "a yellow star", explain=True)
    assert hits and all(h.explain is not None for h in hits)
    first = hits[0].explain
    assert first["reranked"] and first["itm"] == hits[0].itm_score and first["clip"] == hits[0].clip_score
    assert "star" in first["words"]["caption"] and first["ranks"]["vector"] is not None
    assert "yellow" in (hits[0].caption or "")
    assert _ask(idx, "a yellow star")[0].explain is None  # only when asked


def test_requests_check_mode_and_min_match(library) -> None:
    idx, _ = library
    for bad in ({"mode": "fuzzy"}, {"min_match": 1.5}, {"min_match": -0.1}, {"min_match": float("nan")}):
        with pytest.raises(QueryLimitError):
            _ask(idx, "a star", **bad)
    request = SearchRequest((words("a star"),), mode="text", min_match=0.25, explain=True)
    assert SearchRequest.from_json(request.as_json()) == request
    with pytest.raises(QueryLimitError, match="min_match"):
        SearchRequest.from_json({**request.as_json(), "min_match": "high"})


def test_pages_of_a_hybrid_search_with_the_cutoff_neither_repeat_nor_skip(library) -> None:
    idx, _ = library
    for text, kw in (("a red circle", {"rerank_k": 4}), ("a star", {"min_match": 0.0}),
                     ("a circle", {"min_match": 0.0, "rerank_k": 0})):
        whole = [h.path for h in _ask(idx, text, limit=30, **kw)]
        paged = [h.path for offset in range(0, 30, 6) for h in _ask(idx, text, limit=6, offset=offset, **kw)]
        assert paged == whole, text
