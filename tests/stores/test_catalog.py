"""The catalog's schema comes only from migrations, and they agree with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from imgsearch.errors import StoreMismatchError
from imgsearch.stores.catalog import HEAD_REVISION, NewFile, alembic_config, open_catalog
from imgsearch.stores.schema import Base


def test_migrations_from_empty_build_what_the_models_describe(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    open_catalog(url).close()
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert conn.exec_driver_sql("select version_num from alembic_version").scalar() == "0001"
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"
    assert {"files", "meta"} <= set(inspect(engine).get_table_names())


def test_head_revision_constant_is_alembics_head() -> None:
    """open_catalog skips Alembic when the catalog is at HEAD_REVISION: it must be the real head."""
    from alembic.script import ScriptDirectory

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() == HEAD_REVISION


def test_reopening_is_idempotent_and_keeps_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    cat = open_catalog(url)
    [fid] = cat.put_pending([NewFile("/p/a.jpg", 10, 1, "ab" * 32, 4, 3, None)])
    cat.mark_vectors([fid])
    cat.close()
    cat = open_catalog(url)
    assert cat.vector_ids() == {fid}
    cat.close()


def test_an_index_refuses_other_models(tmp_path: Path) -> None:
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    cat.check_models({"clip_model": "A", "vector_dim": "512"})
    cat.check_models({"clip_model": "A", "vector_dim": "512"})
    with pytest.raises(StoreMismatchError, match="--models"):
        cat.check_models({"clip_model": "B", "vector_dim": "512"})


def test_a_new_captioner_drops_old_captions(tmp_path: Path) -> None:
    cat = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    [fid] = cat.put_pending([NewFile("/p/a.jpg", 10, 1, "ab" * 32, 4, 3, None)])
    assert cat.adopt_captioner("cap#1") is False
    cat.set_captions({fid: "a red star"})
    assert cat.adopt_captioner("cap#1") is False
    assert cat.get([fid])[fid].caption == "a red star"
    assert cat.adopt_captioner("cap#2") is True
    assert cat.get([fid])[fid].caption is None
