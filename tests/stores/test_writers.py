"""Writers' leases on one catalog (SQLite and PostgreSQL): a lease is a row its writer keeps
fresh and removes when done; rows a writer puts pending are in flight while its lease is fresh."""

from __future__ import annotations

import time

import pytest

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
