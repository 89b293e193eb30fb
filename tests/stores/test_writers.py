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
from sqlalchemy import update


def _pending(catalog, names: list[str], writer: str | None) -> list[int]:
    return catalog.put_pending([NewFile(f"/p/{n}.jpg", 1, 1, f"{n:0>64}"[:64], 4, 3, None) for n in names], writer)


def _seen(catalog, writer: str) -> float | None:
    with catalog.session() as s:
        row = s.get(WriterRow, writer)
        return None if row is None else row.seen


def _age(catalog, writer: str, seconds: float) -> None:
    """As if `writer` had last refreshed its lease `seconds` earlier (stopped: killed)."""
    with catalog.session() as s, s.begin():
        s.execute(update(WriterRow).where(WriterRow.id == writer).values(seen=WriterRow.seen - seconds))


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
    catalog.add_writer("a" * 32, "a")
    catalog.add_writer("b" * 32, "b")
    ours = _pending(catalog, ["1", "2"], "a" * 32)
    theirs = _pending(catalog, ["3"], "b" * 32)
    nobodys = _pending(catalog, ["4"], None)
    assert catalog.in_flight(60, other_than="a" * 32) == set(theirs)  # a's own rows are its own business
    assert catalog.in_flight(60) == set(ours + theirs)
    catalog.mark_vectors(theirs)
    assert catalog.in_flight(60, other_than="a" * 32) == set()  # done: no longer in flight
    _age(catalog, "a" * 32, 120)  # a stopped refreshing: killed
    assert catalog.in_flight(60) == set()
    assert catalog.refresh_writer("a" * 32, "a") and catalog.in_flight(60) == set(ours)  # only stalled
    assert nobodys[0] not in catalog.in_flight(60)
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
    catalog.add_writer("a" * 32, "a")
    catalog.add_writer("b" * 32, "b")
    a, b = Claim("a" * 32, 60), Claim("b" * 32, 60)
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
    _age(catalog, "a" * 32, 120)  # a died holding the rest
    assert [f.id for f in catalog.needs_caption(4, claim=b)] == first[2:]
    catalog.set_captions({i: "done" for i in ids})
    assert catalog.needs_caption(10, claim=Claim("c" * 32, 60)) == [] and catalog.waiting("caption") == 0
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
    writers_ = [f"{n:032d}" for n in range(8)]
    for w in writers_:
        catalog.add_writer(w, w)

    def work(writer: str) -> list[int]:
        got, after = [], 0
        while todo := catalog.needs_tags(7, after, Claim(writer, 60)):
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
    catalog.add_writer("a" * 32, "killed a moment ago")
    theirs = _pending(catalog, ["1"], "a" * 32)
    stores = Stores(catalog, None, writer="b" * 32)  # type: ignore[arg-type]  (repair's view needs no vectors)
    expected = set() if catalog.engine.dialect.name == "sqlite" else set(theirs)
    assert writers.in_flight(stores) == expected
    catalog.close()


def test_leases_go_by_the_catalogs_clock_not_the_writers(postgres_url: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers on machines ten minutes apart (this process's clock moved back, then forward,
    while each works): each sees the other alive, leaves the other's batch in flight to it and
    takes none of the other's claims."""
    from imgsearch.stores import Stores

    catalog = open_catalog(postgres_url)
    ids = _pending(catalog, [str(n) for n in range(6)], None)
    catalog.mark_vectors(ids)
    real = time.time

    def skewed(seconds: float) -> tuple[writers.WriterLease, Stores, list[int], list[int]]:
        """Start a lease with the clock off by `seconds`, put a batch pending, claim two rows."""
        with monkeypatch.context() as m:
            m.setattr(time, "time", lambda: real() + seconds)
            lease = writers.WriterLease(catalog, f"clock {seconds:+.0f} s").acquire()
            stores = Stores(catalog, None, writer=lease.id)  # type: ignore[arg-type]
            batch = _pending(catalog, [f"batch{seconds:+.0f}"], lease.id)
            claimed = [f.id for f in catalog.needs_caption(2, claim=writers.claim(stores))]
            return lease, stores, batch, claimed

    slow, slow_stores, slow_batch, slow_claimed = skewed(-600)
    fast, fast_stores, fast_batch, fast_claimed = skewed(+600)
    assert slow_claimed == ids[:2] and fast_claimed == ids[2:4]  # the fast one took none of the slow one's
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real() - 600)
        assert writers.in_flight(slow_stores) == set(fast_batch)
        assert [f.id for f in catalog.needs_caption(10, claim=writers.claim(slow_stores))] == ids[4:]
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real() + 600)
        assert writers.in_flight(fast_stores) == set(slow_batch)
        assert catalog.needs_caption(10, claim=writers.claim(fast_stores)) == []
    slow.release()
    fast.release()
    catalog.close()


def test_a_lease_lapsed_long_ago_is_dropped_by_the_next_writer_and_counts_as_lapsed(
        catalog_url: str) -> None:
    """A killed writer's row goes once it is `FORGET_LEASES` leases old, when another writer
    starts; one lapsed more recently stays. The dropped writer's rows are what a lapsed lease's
    are: pending rows repaired, claims free. Were it only stalled, its next refresh is its
    lease again."""
    from imgsearch.stores import Stores
    from imgsearch.stores.catalog import Claim

    catalog = open_catalog(catalog_url)
    ids = _pending(catalog, [str(n) for n in range(4)], None)
    catalog.mark_vectors(ids)
    killed, lapsed = "k" * 32, "l" * 32
    for w in (killed, lapsed):
        catalog.add_writer(w, w)
    assert [f.id for f in catalog.needs_caption(2, claim=Claim(killed, 60))] == ids[:2]
    pending = _pending(catalog, ["k1"], killed)
    _age(catalog, killed, writers.FORGET_LEASES * writers.LEASE_S + 10)
    _age(catalog, lapsed, 2 * writers.LEASE_S)
    other = "o" * 32  # a live writer
    catalog.add_writer(other, "other")
    other_stores = Stores(catalog, None, writer=other)  # type: ignore[arg-type]
    if catalog.engine.dialect.name == "postgresql":
        assert writers.in_flight(other_stores) == set()  # lapsed: a crash's leftovers
        assert [f.id for f in catalog.needs_caption(10, claim=Claim(other, 60))] == ids  # claims free
        catalog.release(ids, Claim(other, 60))
    with writers.WriterLease(catalog, "new") as lease:
        assert _seen(catalog, killed) is None and _seen(catalog, lapsed) is not None
        assert _seen(catalog, other) is not None and _seen(catalog, lease.id) is not None
        if catalog.engine.dialect.name == "postgresql":
            assert writers.in_flight(other_stores) == set()  # dropped: the same as lapsed
            assert [f.id for f in catalog.needs_caption(10, claim=Claim(other, 60))] == ids
        assert catalog.refresh_writer(killed, killed) is False  # it was only stalled: back
        assert catalog.in_flight(60) == set(pending)
    catalog.close()
