"""Beyond one machine, end to end: the catalog on PostgreSQL and the vectors on a Qdrant server
(qdrant-client's in-process mode, which speaks the server's API): index, re-index, move, delete,
and searches by vector, by words (PostgreSQL's full-text index) and both. docs/scale-out.md."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from conftest import fresh_postgres_database
from imgsearch.indexer import run_index
from imgsearch.library.local import LocalIndex
from imgsearch.searcher.request import VECTOR, WORDS_ONLY, SearchRequest, words
from imgsearch.settings import Settings


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from fresh_postgres_database()


def test_a_postgres_catalog_with_a_qdrant_server(postgres_url: str, tmp_path: Path, shapes_folder: Path) -> None:
    settings = Settings(home=tmp_path / "home", models="tiny", batch_size=8, decode_workers=2,
                        catalog_url=postgres_url)
    trip = shapes_folder / "lisbon trip"
    trip.mkdir()
    shutil.move(min(shapes_folder.glob("*.png")), trip / "sunset-at-the-beach.png")
    client = QdrantClient(":memory:")
    assert run_index(settings, [shapes_folder], captions=False, texts=False, client=client).embedded == 12
    assert not (settings.index_dir / "catalog.sqlite3").exists(), "the SQLite catalog must not be made"
    assert run_index(settings, [shapes_folder], captions=False, texts=False, client=client).unchanged == 12
    shutil.move(trip, shapes_folder / "porto trip")
    victim = min(shapes_folder.glob("*.png"))
    victim.unlink()
    report = run_index(settings, [shapes_folder], captions=False, texts=False, client=client)
    assert report.removed == 1 and client.count(settings.collection).count == 11
    with LocalIndex(settings, client=client) as idx:
        named = idx.search(SearchRequest((words("porto sunset"),), mode=WORDS_ONLY, limit=5, rerank_k=0))
        assert [Path(h.path).relative_to(shapes_folder) for h in named] == [Path("porto trip/sunset-at-the-beach.png")]
        assert idx.search(SearchRequest((words("lisbon"),), mode=WORDS_ONLY, limit=5, rerank_k=0)) == []
        hybrid = idx.search(SearchRequest((words("a beach sunset"),), limit=5, rerank_k=0, min_match=0.0))
        assert Path(hybrid[0].path).name == "sunset-at-the-beach.png"  # its name says so: first
        vector = idx.search(SearchRequest((words("a red circle"),), mode=VECTOR, limit=20, rerank_k=0, min_match=0.0))
        assert len(vector) == 11 and str(victim) not in {h.path for h in vector}
    client.close()


def test_a_writers_repair_leaves_another_live_writers_batch_in_flight(postgres_url: str, tmp_path: Path,
                                                                      shapes_folder: Path) -> None:
    """Two writers on one PostgreSQL catalog and one Qdrant collection (other homes, so no shared
    lock): B's run starts with a crash repair while A has a batch in flight (rows pending, points
    written). A's points stay while A's lease is fresh; once A stops refreshing it (killed), the
    next repair removes them as a crash's leftovers and their rows are embedded again."""
    import numpy as np
    from sqlalchemy import update

    from imgsearch.models.profiles import model_facts, resolve_profile
    from imgsearch.stores import open_stores, recorded_dim
    from imgsearch.stores.catalog import NewFile
    from imgsearch.stores.schema import WriterRow
    from imgsearch.stores.writers import LEASE_S

    a, b = (Settings(home=tmp_path / name, models="tiny", batch_size=8, decode_workers=2, catalog_url=postgres_url)
            for name in ("a", "b"))
    client = QdrantClient(":memory:")
    assert run_index(b, [shapes_folder], captions=False, texts=False, client=client).embedded == 12
    with open_stores(a, model_facts(resolve_profile(a)), recorded_dim(a), client=client) as stores:  # A, mid-batch
        stores.catalog.add_writer("a" * 32, "writer a")
        ids = stores.catalog.put_pending([NewFile(f"/elsewhere/{n}.png", 1, 1, f"{n:0>64}", 4, 3, None)
                                          for n in range(3)], "a" * 32)
        stores.vectors.upsert(ids, np.eye(3, recorded_dim(a), dtype=np.float32), [{} for _ in ids])
        stores.vectors.flush()
        report = run_index(b, [shapes_folder], captions=False, texts=False, client=client)
        assert report.repaired == 0 and report.unchanged == 12
        assert client.count(b.collection).count == 15  # A's batch is still there
        with stores.catalog.session() as s, s.begin():  # A was killed: its last refresh ages
            s.execute(update(WriterRow).where(WriterRow.id == "a" * 32).values(seen=WriterRow.seen - LEASE_S - 1))
        report = run_index(b, [shapes_folder], captions=False, texts=False, client=client)
        assert report.repaired == 3 and client.count(b.collection).count == 12
    client.close()


def test_two_writers_caption_each_picture_once(postgres_url: str, tmp_path: Path, shapes_folder: Path) -> None:
    """Two writers' caption phases at once on one PostgreSQL catalog: each claims what it does,
    so together they caption each picture once (each alone would caption all twelve)."""
    from concurrent.futures import ThreadPoolExecutor

    from imgsearch.indexer.captions import caption_pending
    from imgsearch.models import Models
    from imgsearch.progress import NoProgress
    from imgsearch.stores import open_stores
    from imgsearch.stores.writers import writing

    a, b = (Settings(home=tmp_path / name, models="tiny", batch_size=8, decode_workers=2, catalog_url=postgres_url)
            for name in ("a", "b"))
    client = QdrantClient(":memory:")
    assert run_index(b, [shapes_folder], captions=False, texts=False, client=client).embedded == 12

    def captions(settings: Settings) -> int:
        models = Models(settings)
        with open_stores(settings, models.facts(), models.clip.dim, client=client) as stores, \
                writing(stores, settings.home.name):
            return caption_pending(stores, models, 2, NoProgress())

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(captions, (a, b)))
    assert sum(done) == 12
    with LocalIndex(b, client=client) as idx:
        assert idx.status()["captioned"] == 12
    client.close()
