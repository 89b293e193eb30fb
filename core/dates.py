"""A picture's date, one way everywhere: the camera's wall-clock time (EXIF DateTimeOriginal) when
the picture has one, else the file's modification time as local wall-clock time. Both are naive
datetimes; the vector store keeps them as seconds (`epoch`, reading the wall clock as if it were
UTC, so a photo taken at 10:00 anywhere is filed under 10:00), and a query's periods
(`--from 2019-06`) are turned into the same seconds."""

from __future__ import annotations

import calendar
import re
from datetime import date, datetime, timedelta

from imgsearch.errors import ConfigError

EXIF, FILE = "exif", "file"  # where a picture's date came from
_PERIOD = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


def picture_date(taken_at: datetime | None, mtime_ns: int) -> tuple[datetime, str]:
    """The date a picture is filed under, and its source."""
    if taken_at is not None:
        return taken_at, EXIF
    return datetime.fromtimestamp(mtime_ns / 1e9).replace(microsecond=0), FILE


def epoch(moment: datetime) -> float:
    """Seconds of a naive wall-clock datetime, as the vector store's `date` payload holds them."""
    return calendar.timegm(moment.timetuple()) + moment.microsecond / 1e6


def period(text: str) -> tuple[datetime, datetime]:
    """`YYYY`, `YYYY-MM` or `YYYY-MM-DD` → [start, end): the whole period it names."""
    m = _PERIOD.match(text.strip())
    if m is None:
        raise ConfigError(f"a date is YYYY, YYYY-MM or YYYY-MM-DD (got {text!r})")
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        if month is None:
            return datetime(year, 1, 1), datetime(year + 1, 1, 1)
        if day is None:
            start = datetime(year, int(month), 1)
            return start, datetime(year + (start.month == 12), start.month % 12 + 1, 1)
        start = datetime.combine(date(year, int(month), int(day)), datetime.min.time())
        return start, start + timedelta(days=1)
    except (ValueError, OverflowError):
        raise ConfigError(f"no such date: {text!r}") from None
