"""Writers' leases on one catalog (SQLite and PostgreSQL): a lease is a row its writer keeps
fresh and removes when done; rows a writer puts pending are in flight while its lease is fresh."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from conftest import fresh_postgres_database

from imgsearch.stores import writers
from imgsearch.stores.catalog import NewFile, open_catalog
from imgsearch.stores.schema import WriterRow


def _pending(catalog, names: list[str], writer: str | None) -> list[int]:
    return catalog.put_pending([NewFile(f"/p/{n}.jpg", 1, 1, f"{n:0>64}"[:64], 4, 3, None) for n in names], writer)


def _seen(catalog, writer: str) -> float | None:
    with catalog.session() as s:
        row = s.get(WriterRow, writer)
        return None if row is None else row.seen


def test_a_lease_is_kept_fresh_while_held_and_removed_after(catalog_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "LEASE_S", 0.2)  # refreshed every 0.05 s
    catalog = open_catalog(catalog_url)
    with writers.WriterLease(catalog, "test") as lease:
        first = _seen(catalog, lease.id)
        assert first is not None
        deadline = time.monotonic() + 30
        while _seen(catalog, lease.id) == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _seen(catalog, lease.id) > first  # refreshed by its thread
    assert _seen(catalog, lease.id) is None
    catalog.close()


def test_rows_are_in_flight_while_their_writer_lives(catalog_url: str) -> None:
    catalog = open_catalog(catalog_url)
    now = time.time()
    catalog.add_writer("a" * 32, "a", now)
    catalog.add_writer("b" * 32, "b", now)
    ours = _pending(catalog, ["1", "2"], "a" * 32)
    theirs = _pending(catalog, ["3"], "b" * 32)
    nobodys = _pending(catalog, ["4"], None)
    assert catalog.in_flight(now - 60, other_than="a" * 32) == set(theirs)  # a's own rows are its own business
    assert catalog.in_flight(now - 60) == set(ours + theirs)
    catalog.mark_vectors(theirs)
    assert catalog.in_flight(now - 60, other_than="a" * 32) == set()  # done: no longer in flight
    catalog.refresh_writer("a" * 32, now - 120)  # a stopped refreshing: killed
    assert catalog.in_flight(now - 60) == set()
    assert nobodys[0] not in catalog.in_flight(now - 60)
    catalog.remove_writer("b" * 32)
    catalog.close()


def test_writers_share_a_phases_work_by_claims(catalog_url: str) -> None:
    """Two live writers asking for the pictures still without captions get different ones (on
    PostgreSQL; SQLite has one writer, which gets all); what a writer gives back, or what a
    dead writer held, is free again; a writer is not given its own claims twice."""
    from imgsearch.stores.catalog import Claim

    catalog = open_catalog(catalog_url)
    ids = _pending(catalog, [str(n) for n in range(6)], None)
    catalog.mark_vectors(ids)
    now = time.time()
    catalog.add_writer("a" * 32, "a", now)
    catalog.add_writer("b" * 32, "b", now)
    a, b = Claim("a" * 32, now - 60), Claim("b" * 32, now - 60)
    first = [f.id for f in catalog.needs_caption(4, claim=a)]
    assert first == ids[:4]
    second = [f.id for f in catalog.needs_caption(4, claim=b)]
    if catalog.engine.dialect.name == "sqlite":
        assert second == ids[:4]  # no claims: one writer (the flock) does it all
        return
    assert second == ids[4:]  # a's claims are a's
    assert catalog.needs_caption(4, claim=a) == []  # and not given to a again
    assert [f.id for f in catalog.needs_caption(10)] == ids  # asking without a claim: everything waiting
    catalog.release(first[:2], a)
    assert [f.id for f in catalog.needs_caption(4, claim=b)] == first[:2]
    catalog.refresh_writer("a" * 32, now - 120)  # a died holding the rest
    assert [f.id for f in catalog.needs_caption(4, claim=b)] == first[2:]
    catalog.set_captions({i: "done" for i in ids})
    assert catalog.needs_caption(10, claim=Claim("c" * 32, now - 60)) == [] and catalog.waiting("caption") == 0
    catalog.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from fresh_postgres_database()


def test_concurrent_claims_never_overlap(postgres_url: str) -> None:
    """Eight writers claiming at the same moment on PostgreSQL (SKIP LOCKED) split the rows."""
    from concurrent.futures import ThreadPoolExecutor

    from imgsearch.stores.catalog import Claim

    catalog = open_catalog(postgres_url)
    ids = _pending(catalog, [str(n) for n in range(200)], None)
    catalog.mark_vectors(ids)
    now = time.time()
    writers_ = [f"{n:032d}" for n in range(8)]
    for w in writers_:
        catalog.add_writer(w, w, now)

    def work(writer: str) -> list[int]:
        got, after = [], 0
        while todo := catalog.needs_tags(7, after, Claim(writer, now - 60)):
            got += todo
            after = todo[-1]
        return got

    with ThreadPoolExecutor(8) as pool:
        shares = list(pool.map(work, writers_))
    claimed = [i for share in shares for i in share]
    assert sorted(claimed) == sorted(ids)  # every row once, none twice
    catalog.close()


def test_repair_leaves_other_writers_batches_only_where_other_writers_can_be(catalog_url: str) -> None:
    """On SQLite the one writer holds the lock: another lease there is a killed run's, however
    fresh, and its pending rows' points are leftovers to repair at once."""
    from imgsearch.stores import Stores

    catalog = open_catalog(catalog_url)
    catalog.add_writer("a" * 32, "killed a moment ago", time.time())
    theirs = _pending(catalog, ["1"], "a" * 32)
    stores = Stores(catalog, None, writer="b" * 32)  # type: ignore[arg-type]  (repair's view needs no vectors)
    expected = set() if catalog.engine.dialect.name == "sqlite" else set(theirs)
    assert writers.in_flight(stores) == expected
    catalog.close()
