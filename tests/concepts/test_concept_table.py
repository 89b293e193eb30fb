"""The catalog's `concepts` table (migration 0006) and the store over it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
from imgsearch.concepts import Concept, ConceptExample
from imgsearch.stores.catalog import NewFile, alembic_config, open_catalog
from imgsearch.stores.concepts import ConceptStore
from sqlalchemy import create_engine, inspect


def _concept(name: str, dim: int = 4) -> Concept:
    when = datetime(2026, 11, 30, 12, 0, 0)
    return Concept(name, np.arange(dim, dtype=np.float32), -0.5, "clip-x", ("/p/a.jpg",), ("b.jpg",), when, when, 7,
                   1.0)


def test_a_concept_round_trip_with_its_examples(tmp_path: Path) -> None:
    store = ConceptStore(open_catalog(f"sqlite:///{tmp_path}/c.db"))
    examples = [ConceptExample("/p/a.jpg", True, np.ones(4, np.float32)),
                ConceptExample("b.jpg", False, np.full(4, 0.5, np.float32), indexed=False)]
    store.put(_concept("zeta"), examples)
    store.put(_concept("alpha"), examples[:1])
    got = store.get("zeta")
    assert got is not None and got.summary() == _concept("zeta").summary()
    assert np.array_equal(got.weights, np.arange(4, dtype=np.float32))
    assert [c.name for c in store.all()] == ["alpha", "zeta"]
    back = store.examples("zeta")
    assert [(e.name, e.positive, e.indexed) for e in back] == [("/p/a.jpg", True, True), ("b.jpg", False, False)]
    assert np.array_equal(back[1].vector, examples[1].vector)
    store.put(_concept("zeta", dim=2), examples)  # replaced, not added
    assert store.get("zeta").dim == 2 and len(store.all()) == 2
    assert store.remove("zeta") and not store.remove("zeta") and store.get("zeta") is None
    store.catalog.close()


def test_indexed_paths_and_random_pictures_leave_out_what_they_should(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path}/c.db")
    ids = catalog.put_pending([NewFile(f"/p/{i}.jpg", 1, 1, f"{i:064d}", 2, 2, None) for i in range(10)])
    catalog.mark_vectors(ids[:9])  # the last one has no vector yet
    store = ConceptStore(catalog)
    assert store.indexed(["/p/0.jpg", "/p/9.jpg", "/elsewhere.jpg"]) == {"/p/0.jpg": (ids[0], f"{0:064d}")}
    drawn = store.random_pictures(100, {ids[0]}, {f"{1:064d}"}, seed=3)
    assert drawn == ids[2:9]
    assert store.random_pictures(3, set(), set(), seed=3) == store.random_pictures(3, set(), set(), seed=3)
    assert len(store.random_pictures(3, set(), set(), seed=3)) == 3
    catalog.close()


def test_a_0005_catalog_gains_the_table_and_0006_goes_back_down(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path}/c.db"
    command.upgrade(alembic_config(url), "0005")
    engine = create_engine(url)
    assert not inspect(engine).has_table("concepts")
    open_catalog(url).close()
    assert inspect(engine).has_table("concepts")
    command.downgrade(alembic_config(url), "0005")
    assert not inspect(engine).has_table("concepts")
    engine.dispose()
