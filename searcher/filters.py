"""A request's filters, resolved once: folders made absolute, periods turned into [start, end)
(`--from 2019-06 --until 2019-08` is June through August), a camera substring turned into the
exact camera names the catalog holds, tags into the labels the catalog holds (any case) and the
ids that carry them all. The vector engine applies them (`PointFilter`) before ranking, so a
filter that keeps 1 % of the pictures still fills a page."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

from imgsearch.dates import epoch, period
from imgsearch.errors import ConfigError
from imgsearch.stores.catalog import Catalog
from imgsearch.stores.vectors import PointFilter

from .request import SearchRequest


@dataclass(frozen=True)
class Filters:
    folders: tuple[str, ...] = ()
    date_from: datetime | None = None  # inclusive
    date_until: datetime | None = None  # exclusive
    cameras: tuple[str, ...] | None = None  # None: any camera
    tags: tuple[str, ...] = ()  # exact labels, all of them
    tagged: tuple[int, ...] | None = None  # the ids that carry every tag; None: no tag filter

    def point_filter(self) -> PointFilter:
        return PointFilter(folders=self.folders,
                           date_from=epoch(self.date_from) if self.date_from else None,
                           date_until=epoch(self.date_until) if self.date_until else None,
                           cameras=self.cameras, ids=self.tagged)


class UnknownTagError(ConfigError):
    """No picture carries a tag a search asks for (a typo, or a label of no vocabulary)."""


def resolve(request: SearchRequest, catalog: Catalog) -> Filters | None:
    """None when no picture can pass (a camera the catalog has never seen, tags no picture
    carries together); UnknownTagError for a tag no picture carries at all."""
    cameras = None
    if request.camera:
        cameras = tuple(catalog.cameras_like(request.camera))
        if not cameras:
            return None
    tags: tuple[str, ...] = ()
    tagged = None
    if request.tags:
        tags = tuple(_known_label(tag, catalog) for tag in request.tags)
        tagged = tuple(catalog.tagged_ids(tags))
        if not tagged:
            return None
    folders = tuple(os.path.abspath(f).rstrip("/") or "/" for f in request.folders)
    return Filters(folders=folders,
                   date_from=period(request.date_from)[0] if request.date_from else None,
                   date_until=period(request.date_until)[1] if request.date_until else None,
                   cameras=cameras, tags=tags, tagged=tagged)


def _known_label(tag: str, catalog: Catalog) -> str:
    """The label as stored: as typed when a picture has it (one query), else the one
    that differs only in case (a scan, as is the message for a typo)."""
    for spelling in dict.fromkeys((tag.strip(), tag.strip().lower())):
        if catalog.tagged_ids([spelling], limit=1):
            return spelling
    labels = [label for label, _ in catalog.tag_counts()]
    for label in labels:
        if label.casefold() == tag.strip().casefold():
            return label
    import difflib

    close = difflib.get_close_matches(tag.strip().casefold(), labels, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else " `imgsearch tags` lists the tags in use."
    raise UnknownTagError(f"no picture is tagged {tag.strip()!r}.{hint}")
