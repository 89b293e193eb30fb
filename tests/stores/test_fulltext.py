"""The catalog's full-text index: built by migration 0003 (from rows already there too), kept in
step by triggers whatever writes the catalog, filtered like every other search, safe with any
words a user types. The same tests on PostgreSQL (`catalog_url`), where it is migration 0007's
generated `tsvector` column."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import create_engine

from imgsearch.stores.catalog import Catalog, NewFile, alembic_config, open_catalog
from imgsearch.stores.fulltext import FullText, query_words


def _add(cat: Catalog, paths: list[str], date: datetime = datetime(2020, 1, 1)) -> list[int]:
    ids = cat.put_pending([NewFile(p, 1, 1, f"{abs(hash(p)):064x}"[:64], 4, 3, None, None, date, "file")
                           for p in paths])
    cat.mark_vectors(ids)
    return ids


def _found(ft: FullText, text: str, **filters: object) -> set[int]:
    return {i for i, _ in ft.search(query_words([text]), 50, **filters)}  # type: ignore[arg-type]


def test_words_are_found_in_names_folders_and_captions(catalog_url: str) -> None:
    cat = open_catalog(catalog_url)
    a, b, c = _add(cat, ["/p/Lisbon 2019/IMG_2043.JPG", "/p/grandma-birthday/cake.jpg", "/p/misc/x.png"])
    cat.set_captions({c: "two red circles left of a blue square"})
    ft = FullText(cat)
    assert ft.available
    assert _found(ft, "lisbon") == {a}  # any case
    assert _found(ft, "IMG_2043") == {a}  # '_' splits as in the index: img + 2043
    assert _found(ft, "birthday of grandma") == {b}  # '-' splits; stop words are left out
    assert _found(ft, "a red circle") == {c}  # stemmed: circles ~ circle
    assert _found(ft, "photos of a") == set()  # nothing but stop words: no text part
    ev = ft.evidence([a, b, c], query_words(["lisbon red cake"]))
    assert ev[a] == {"name": [], "folders": ["lisbon"], "caption": [], "text": []}
    assert ev[b] == {"name": ["cake"], "folders": [], "caption": [], "text": []}
    assert ev[c] == {"name": [], "folders": [], "caption": ["red"], "text": []}
    cat.set_texts({b: "HAPPY BIRTHDAY ANNA", c: None})
    assert ft.evidence([b], query_words(["anna"]))[b]["text"] == ["anna"] and _found(ft, "happy") == {b}


def test_the_index_follows_moves_captions_skips_and_deletes(catalog_url: str) -> None:
    cat = open_catalog(catalog_url)
    a, b = _add(cat, ["/p/misc/a.jpg", "/p/misc/b.jpg"])
    ft = FullText(cat)
    cat.move_under("/p/misc", "/p/porto")
    assert _found(ft, "porto") == {a, b} and _found(ft, "misc") == set()
    cat.set_captions({a: "a yellow star"})
    assert _found(ft, "yellow") == {a}
    cat.set_captions({a: "a green star"})
    assert _found(ft, "yellow") == set() and _found(ft, "green") == {a}
    cat.record_skip("/p/porto/b.jpg", 1, 2, "truncated file")
    assert _found(ft, "porto") == {a}  # a skipped file is no search result
    cat.delete([a])
    assert _found(ft, "porto") == set() and _found(ft, "green") == set()


def test_filters_apply_and_pending_rows_are_left_out(catalog_url: str) -> None:
    cat = open_catalog(catalog_url)
    old, = _add(cat, ["/p/2019/lisbon.jpg"], datetime(2019, 5, 1))
    new, = _add(cat, ["/p/2021/lisbon.jpg"], datetime(2021, 5, 1))
    cat.put_pending([NewFile("/p/2021/lisbon-pending.jpg", 1, 1, "e" * 64, 4, 3, None, None,
                             datetime(2021, 5, 1), "file")])
    ft = FullText(cat)
    assert _found(ft, "lisbon") == {old, new}
    assert _found(ft, "lisbon", folders=["/p/2021"]) == {new}
    assert _found(ft, "lisbon", date_from=datetime(2020, 1, 1)) == {new}
    assert _found(ft, "lisbon", date_until=datetime(2020, 1, 1)) == {old}
    assert _found(ft, "lisbon", cameras=()) == set()


def test_any_words_a_user_types_are_safe(catalog_url: str) -> None:
    cat = open_catalog(catalog_url)
    a, = _add(cat, ["/p/NEAR AND OR/file.jpg"])
    ft = FullText(cat)
    for text in ['"', "a*", "NEAR(", "x OR", "-y", "caption:", "{name}: z", "^", "ü’s ☃ 東京", "\x00"]:
        ft.search(query_words([text]), 10)  # no FTS5 syntax error, whatever the words
    assert _found(ft, "near and or") == {a}  # operators are plain words here


def test_an_0003_catalog_keeps_its_index_and_gains_the_text_column(catalog_url: str) -> None:
    from alembic import command

    url = catalog_url
    command.upgrade(alembic_config(url), "0003")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into files (path, size, mtime_ns, sha256, has_vector, caption, date)"
            " values ('/p/porto/a.jpg', 10, 1, 'aa', true, 'a green star', '2020-01-01 00:00:00')")
    engine.dispose()
    cat = open_catalog(url)
    ft = FullText(cat)
    assert _found(ft, "porto green") == {1}
    assert [f.id for f in cat.needs_text(10)] == [1]  # never read: the next run reads it
    assert cat.adopt_text_reader("ocr#1") is False  # the first reader is recorded
    cat.set_texts({1: "PRAIA"})
    assert _found(ft, "praia") == {1} and cat.needs_text(10) == []
    assert cat.adopt_text_reader("ocr#1") is False and cat.needs_text(10) == []
    assert cat.adopt_text_reader("ocr#2") is True  # another reader: every picture is read again
    assert [f.id for f in cat.needs_text(10)] == [1] and _found(ft, "praia") == set()


def test_an_0002_catalog_gets_the_index_built_from_its_stored_captions(catalog_url: str) -> None:
    from alembic import command

    url = catalog_url
    command.upgrade(alembic_config(url), "0002")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into files (path, size, mtime_ns, sha256, has_vector, caption, date)"
            " values ('/p/lisbon/a.jpg', 10, 1, 'aa', true, 'a purple triangle', '2020-01-01 00:00:00'),"
            " ('/p/b.jpg', 20, 2, 'bb', true, null, '2020-01-01 00:00:00')")
    engine.dispose()
    cat = open_catalog(url)
    ft = FullText(cat)
    assert _found(ft, "purple triangle") == {1} and _found(ft, "lisbon") == {1} and _found(ft, "b") == {2}


def test_names_need_every_word_close_together_and_words_all_pictures_share_say_nothing(catalog_url: str) -> None:
    cat = open_catalog(catalog_url)
    paths = ["/home/anna/Photos/grandma-birthday/1.jpg", "/home/anna/Photos/day at the beach/2.jpg",
             "/home/anna/Photos/misc/purple-circle-seen-above-a-red-triangle.png", "/home/anna/Photos/misc/3.jpg"]
    a, b, c, d = _add(cat, paths)
    ft = FullText(cat)
    assert ft.named([a, b, c, d], query_words(["grandma birthday"])) == {a}
    assert ft.named([a, b, c, d], query_words(["birthday of grandma"])) == {a}  # any order
    assert ft.named([a, b, c, d], query_words(["a day at the beach"])) == {b}
    assert ft.named([a, b, c, d], query_words(["a red circle"])) == set()  # three words apart: not one thing
    assert ft.named([a, b, c, d], query_words(["anna"])) == set()  # in every picture's folders
    assert ft.evidence([a], query_words(["anna photos grandma"]))[a]["folders"] == ["grandma"]


def test_which_words_are_common_is_remembered_across_searches_for_a_while(catalog_url: str, monkeypatch) -> None:
    """Counting a word's files for each search was most of a query's word evidence: the answer is
    kept for the catalog, and counted again once it is `TTL` seconds old (pictures added since,
    by any process, count then)."""
    from imgsearch.stores import fulltext

    now = [1000.0]
    monkeypatch.setattr(fulltext.time, "monotonic", lambda: now[0])
    cat = open_catalog(catalog_url)
    first = _add(cat, ["/p/beach/1.jpg", "/p/misc/2.jpg", "/p/misc/3.jpg", "/p/misc/4.jpg"])
    assert FullText(cat).evidence(first, ["beach"])[first[0]]["folders"] == ["beach"]
    more = _add(cat, [f"/p/beach/{n}.jpg" for n in range(5, 12)])  # now in most pictures' folders
    assert FullText(cat).evidence(more, ["beach"])[more[0]]["folders"] == ["beach"]  # still remembered
    now[0] += fulltext._CommonWords.TTL + 1
    assert FullText(cat).evidence(more, ["beach"])[more[0]]["folders"] == []  # counted again: says nothing
