"""A request's filters, resolved once: folders made absolute, periods turned into [start, end)
(`--from 2019-06 --until 2019-08` is June through August), a camera substring turned into the
exact camera names the catalog holds. The vector engine applies them (`PointFilter`) before
ranking, so a filter that keeps 1 % of the pictures still fills a page."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from imgsearch.dates import epoch, period
from imgsearch.stores.catalog import Catalog
from imgsearch.stores.vectors import PointFilter

from .request import SearchRequest


@dataclass(frozen=True)
class Filters:
    folders: tuple[str, ...] = ()
    date_from: datetime | None = None  # inclusive
    date_until: datetime | None = None  # exclusive
    cameras: tuple[str, ...] | None = None  # None: any camera

    def point_filter(self) -> PointFilter:
        return PointFilter(folders=self.folders,
                           date_from=epoch(self.date_from) if self.date_from else None,
                           date_until=epoch(self.date_until) if self.date_until else None,
                           cameras=self.cameras)


def resolve(request: SearchRequest, catalog: Catalog) -> Filters | None:
    """None when no picture can pass (a camera the catalog has never seen)."""
    cameras = None
    if request.camera:
        cameras = tuple(catalog.cameras_like(request.camera))
        if not cameras:
            return None
    folders = tuple(os.path.abspath(f).rstrip("/") or "/" for f in request.folders)
    return Filters(folders=folders,
                   date_from=period(request.date_from)[0] if request.date_from else None,
                   date_until=period(request.date_until)[1] if request.date_until else None,
                   cameras=cameras)
