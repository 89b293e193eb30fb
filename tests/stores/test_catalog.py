"""The catalog's schema comes only from migrations, and they agree with the models; on SQLite and on
PostgreSQL (`catalog_url`, tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from imgsearch.errors import StoreMismatchError
from imgsearch.stores.catalog import HEAD_REVISION, Catalog, CatalogCounts, NewFile, alembic_config, open_catalog
from imgsearch.stores.schema import Base, described


def test_migrations_from_empty_build_what_the_models_describe(catalog_url: str) -> None:
    open_catalog(catalog_url).close()
    engine = create_engine(catalog_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": described}), Base.metadata)
        assert diff == []
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar() == HEAD_REVISION
        if engine.dialect.name == "sqlite":
            assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
    assert {"files", "meta", "concepts"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_head_revision_constant_is_alembics_head() -> None:
    """open_catalog skips Alembic when the catalog is at HEAD_REVISION: it must be the real head."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() == HEAD_REVISION


def test_reopening_is_idempotent_and_keeps_rows(catalog_url: str) -> None:
    url = catalog_url
    cat = open_catalog(url)
    [fid] = cat.put_pending([NewFile("/p/a.jpg", 10, 1, "ab" * 32, 4, 3, None)])
    cat.mark_vectors([fid])
    cat.close()
    cat = open_catalog(url)
    assert cat.vector_ids() == {fid}
    cat.close()


def test_an_index_refuses_other_models(catalog_url: str) -> None:
    cat = open_catalog(catalog_url)
    cat.check_models({"clip_model": "A", "vector_dim": "512"})
    cat.check_models({"clip_model": "A", "vector_dim": "512"})
    with pytest.raises(StoreMismatchError, match="--models"):
        cat.check_models({"clip_model": "B", "vector_dim": "512"})


def test_a_new_captioner_drops_old_captions(catalog_url: str) -> None:
    cat = open_catalog(catalog_url)
    [fid] = cat.put_pending([NewFile("/p/a.jpg", 10, 1, "ab" * 32, 4, 3, None)])
    assert cat.adopt_captioner("cap#1") is False
    cat.set_captions({fid: "a red star"})
    assert cat.adopt_captioner("cap#1") is False
    assert cat.get([fid])[fid].caption == "a red star"
    assert cat.adopt_captioner("cap#2") is True
    assert cat.get([fid])[fid].caption is None


def test_a_0001_catalog_upgrades_on_open_keeping_its_rows(catalog_url: str) -> None:
    from alembic import command

    url = catalog_url
    command.upgrade(alembic_config(url), "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "insert into files (path, size, mtime_ns, sha256, width, height, taken_at, has_vector, caption)"
            " values ('/p/a.jpg', 10, 1, 'aa', 4, 3, '2020-05-06 07:08:09.000000', true, 'a cat'),"
            " ('/p/b.jpg', 20, 2, 'bb', 5, 6, null, true, null)")
        conn.exec_driver_sql("insert into meta (key, value) values ('clip_model', 'A')")
    engine.dispose()
    cat = open_catalog(url)
    assert cat.meta() == {"clip_model": "A"} and cat.vector_ids() == {1, 2}
    a = cat.get([1])[1]
    assert (a.path, a.caption, a.taken_at) == ("/p/a.jpg", "a cat", datetime(2020, 5, 6, 7, 8, 9))
    assert (a.date, a.date_source, a.camera) == (None, None, None)
    assert [f.id for f in cat.needs_backfill(10)] == [1, 2]
    cat.set_dates({1: (datetime(2020, 5, 6, 7, 8, 9), "exif", "Canon EOS 5D"),
                   99: (datetime(2000, 1, 1), "file", None)})  # a row gone meanwhile is no error
    assert [f.id for f in cat.needs_backfill(10)] == [2]
    assert cat.get([1])[1].camera == "Canon EOS 5D"
    cat.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar() == HEAD_REVISION
    engine.dispose()


def _library(url: str) -> tuple[Catalog, dict[str, int]]:
    """Six indexed pictures over three folders, three cameras and three years, plus one pending
    and one skipped row that no listing shows."""
    cat = open_catalog(url)
    rows = [
        ("/p/2019/a.jpg", datetime(2019, 6, 1), "Canon EOS 5D"),
        ("/p/2019/b.jpg", datetime(2019, 6, 1), "Canon EOS R5"),  # same moment as a: id decides
        ("/p/2020/c.jpg", datetime(2020, 1, 1), "NIKON D750"),
        ("/p/2020/sub/d.jpg", datetime(2020, 12, 31, 23, 59), None),
        ("/p/20201/e.jpg", datetime(2021, 3, 3), "Apple iPhone 12"),  # "/p/2020" is not its folder
        ("/p/100%_x/f.jpg", datetime(2018, 1, 1), "canon powershot"),
    ]
    ids = cat.put_pending([NewFile(p, 1, 1, f"{i:064x}", 4, 3, None, None, d, "exif", c)
                           for i, (p, d, c) in enumerate(rows)])
    cat.mark_vectors(ids)
    pending = NewFile("/p/2019/pending.jpg", 1, 1, "f" * 64, 4, 3, None, None, datetime(2019, 6, 2), "file")
    cat.put_pending([pending])
    cat.record_skip("/p/2019/broken.jpg", 1, 1, "truncated file")
    return cat, dict(zip([Path(p).stem for p, _, _ in rows], ids))


def test_listing_filters_in_sql_and_orders_by_date(catalog_url: str) -> None:
    cat, ids = _library(catalog_url)
    names = {v: k for k, v in ids.items()}

    def listing(
        folders: Sequence[str] = (), start: datetime | None = None, until: datetime | None = None,
        cameras: Sequence[str] | None = None, newest: bool = True, limit: int = 50, offset: int = 0,
    ) -> str:
        """The listing as the letters of its files' names, in order."""
        found = cat.listing(folders, start, until, cameras, newest, limit, offset)
        return "".join(names[f.id] for f in found)

    assert listing() == "edcbaf"
    assert listing(newest=False) == "fabcde"
    assert listing(limit=2, offset=1) == "dc" and listing(limit=2, offset=5) == "f"
    assert listing(["/p/2020"]) == "dc" and listing(["/p/2020/"]) == "dc"
    assert listing(["/p/2020/sub", "/p/2019"]) == "dba" and listing(["/"]) == "edcbaf"
    assert listing(["/p/100%_x"]) == "f" and listing(["/p/2019/a.jpg"]) == ""
    assert listing(start=datetime(2019, 6, 1), until=datetime(2020, 12, 31, 23, 59)) == "cba"
    assert listing(cameras=["Canon EOS 5D", "NIKON D750"]) == "ca" and listing(cameras=[]) == ""
    assert listing(["/p"], datetime(2019, 1, 1), datetime(2021, 1, 1), ["Canon EOS R5"], False) == "b"
    info = cat.listing([], None, None, ["NIKON D750"], True, 1, 0)[0]
    assert (info.path, info.date, info.date_source, info.camera) == (
        "/p/2020/c.jpg", datetime(2020, 1, 1), "exif", "NIKON D750")


def test_cameras_like_gives_the_exact_keys_a_word_stands_for(catalog_url: str) -> None:
    cat, _ = _library(catalog_url)
    assert cat.cameras_like("canon") == ["Canon EOS 5D", "Canon EOS R5", "canon powershot"]
    assert cat.cameras_like("EOS r") == ["Canon EOS R5"]
    assert cat.cameras_like("%") == [] and cat.cameras_like("leica") == []
    assert len(cat.cameras_like("")) == 5


def test_what_the_indexer_reads_and_writes(catalog_url: str) -> None:
    """The rest of the catalog's calls, on each database: moves that replace rows, skips,
    counts, tags (JSON text matched with LIKE, read back streamed), texts and captions by content."""
    cat = open_catalog(catalog_url)
    a, b, c = cat.put_pending([NewFile(p, 1, 1, s * 64, 4, 3, None) for p, s in
                               (("/p/x/a.jpg", "a"), ("/p/x/b.jpg", "b"), ("/p/y/b.jpg", "c"))])
    cat.mark_vectors([a, b, c])
    assert cat.ids_under("/p/x") == {a: True, b: True} and cat.ids_under("/p/x/a.jpg") == {a: True}
    assert cat.move_under("/p/x", "/p/y") == (2, [c])  # /p/y/b.jpg was there: replaced by the moved one
    assert sorted(cat.files_under(["/p/y"])) == ["/p/y/a.jpg", "/p/y/b.jpg"] and cat.get([c]) == {}
    assert cat.record_skip("/p/y/a.jpg", 2, 2, "truncated file") == a
    assert cat.skipped() == [("/p/y/a.jpg", "truncated file")] and cat.info(a) is None
    cat.set_tags({b: {"beach": 0.9, "sunset": 0.7}})
    cat.set_texts({b: "PRAIA"})
    cat.set_captions({b: "a beach at dusk"})
    assert cat.tag_counts() == [("beach", 1), ("sunset", 1)] and cat.tagged_ids(["beach", "sunset"]) == [b]
    assert cat.tagged_ids(["beach", "dog"]) == [] and cat.tag_counts(["/p/x"]) == []
    assert cat.text_of_sha(["b" * 64]) == {"b" * 64: "PRAIA"} and cat.caption_of_sha(["b" * 64]) == {
        "b" * 64: "a beach at dusk"}
    assert cat.counts() == CatalogCounts(files=2, images=1, with_vector=1, captioned=1, skipped=1, text_read=1,
                                         tagged=1)
    assert set(cat.reusable_by_sha()) == {"b" * 64} and cat.vector_ids() == {b}
    cat.delete([b])
    assert cat.counts().files == 1
    cat.close()
