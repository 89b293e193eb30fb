"""Bring an index made before dates and cameras were kept up to date, without re-embedding.

Such an index has rows with a vector but no `date`, and points whose payload is only their
sha256. Each row gets its picture date (`dates.picture_date` from the EXIF date the catalog
already keeps, else the file's stored mtime), its camera (read again from the file's EXIF header,
no pixels decoded; a file gone or unreadable has none) and a full `point_payload`. Write order:
payloads, then rows, under `stores.lock`; a row still without a date after a crash is simply
done again by the next run, so no point is ever left with the old payload and a dated row.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from imgsearch.dates import epoch, picture_date
from imgsearch.stores import Stores
from imgsearch.stores.catalog import FileInfo
from imgsearch.stores.vectors import point_payload

CHUNK = 256  # rows per catalog transaction and payload batch
_READERS = 4  # files whose EXIF header is read at once (a network share answers slowly)


def backfill(stores: Stores) -> int:
    """Date, camera and payload for every indexed row that lacks them; returns how many. Costs
    one indexed query when there is nothing to do."""
    rows = stores.catalog.needs_backfill(CHUNK)
    if not rows:
        return 0
    from imgsearch.imaging import read_exif  # Pillow: only when there is something to do (a query opens this)

    done: set[int] = set()
    with ThreadPoolExecutor(max_workers=_READERS, thread_name_prefix="backfill") as pool:
        while rows:
            cameras = list(pool.map(lambda r: read_exif(Path(r.path)).camera, rows))
            values = {r.id: _dated(r, camera) for r, camera in zip(rows, cameras)}
            payloads = [_payload(r, *values[r.id]) for r in rows]
            with stores.lock:
                stores.vectors.set_payload([r.id for r in rows], payloads)
                stores.catalog.set_dates(values)
            done.update(values)
            # A row done already and back undated (a concurrent writer) is left to the next run.
            rows = [r for r in stores.catalog.needs_backfill(CHUNK) if r.id not in done]
    stores.vectors.flush()
    return len(done)


def _payload(row: FileInfo, date: datetime, _source: str, camera: str | None) -> dict[str, Any]:
    return point_payload(row.path, row.sha256 or "", epoch(date), camera)


def _dated(row: FileInfo, camera: str | None) -> tuple[datetime, str, str | None]:
    """The EXIF date kept at indexing time wins; else the mtime the row was indexed with."""
    date, source = picture_date(row.taken_at, row.mtime_ns or 0)
    return date, source, camera
