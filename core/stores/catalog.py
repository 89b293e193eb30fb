"""The catalog: every file seen, its content hash, size, dimensions, date, camera, caption and
why it was skipped. SQLAlchemy 2 over any URL; SQLite (WAL) by default. The schema is created and
upgraded only by the Alembic migrations in `migrations/`, applied on open."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgsearch.errors import StoreError, StoreMismatchError
from imgsearch.stores.schema import FileRow, MetaRow, WriterRow
from sqlalchemy import (Double, bindparam, cast, create_engine, delete, event, extract, func, insert, inspect,
                        literal, literal_column, or_, select, text, update)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config


@dataclass(frozen=True)
class KnownFile:
    id: int
    path: str
    size: int
    mtime_ns: int
    sha256: str | None
    has_vector: bool
    error: str | None


@dataclass(frozen=True)
class FileInfo:
    """What a search hit or a re-used duplicate needs to know of a file."""

    id: int
    path: str
    sha256: str | None
    size: int
    width: int | None
    height: int | None
    taken_at: datetime | None
    caption: str | None
    date: datetime | None = None  # the date it is filed under (`imgsearch.dates.picture_date`)
    date_source: str | None = None  # dates.EXIF | dates.FILE; None with `date` on an old index
    camera: str | None = None
    mtime_ns: int | None = None
    text: str | None = None  # read in the picture (OCR)
    tags: dict[str, float] | None = None  # zero-shot tags, label -> probability; None: not tagged yet


@dataclass(frozen=True)
class NewFile:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    width: int | None
    height: int | None
    taken_at: datetime | None
    caption: str | None = None
    date: datetime | None = None
    date_source: str | None = None
    camera: str | None = None


@dataclass(frozen=True)
class Claim:
    """A writer asking for a phase's work (`Catalog.needs_caption` & co.): its lease id, and how
    long a lease stays alive without a refresh, on the catalog's clock (`stores.writers`)."""

    writer: str
    lease_s: float


@dataclass(frozen=True)
class CatalogCounts:
    files: int
    images: int  # usable images (files minus skipped)
    with_vector: int
    captioned: int
    skipped: int
    text_read: int = 0
    tagged: int = 0


# The newest migration in migrations/versions (tests/stores/test_catalog.py checks it is). A
# catalog already there skips Alembic, whose import alone costs a cold query ~0.4 s.
HEAD_REVISION = "0008"


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("imgsearch.migrations")))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()


def open_catalog(url: str) -> Catalog:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(url)
        if engine.dialect.name == "sqlite":
            _sqlite_pragmas(engine)
        with engine.begin() as conn:
            if _revision(conn) != HEAD_REVISION:
                from alembic import command

                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
    except SQLAlchemyError as e:
        raise StoreError(f"cannot open the catalog at {_shown(url)}: {e}. Check the path or IMGSEARCH_CATALOG_URL.") from e
    except ModuleNotFoundError as e:  # the URL's driver, e.g. psycopg for postgresql+psycopg://
        raise StoreError(f"the catalog at {_shown(url)} needs the Python package {e.name!r}: for PostgreSQL, "
                         "pip install 'imgsearch[scale]'.") from e
    return Catalog(engine)


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except SQLAlchemyError:
        return "(an unreadable URL)"


def _revision(conn: Any) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("select version_num from alembic_version")).scalar()


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _known(row: FileRow) -> KnownFile:
    return KnownFile(row.id, row.path, row.size, row.mtime_ns, row.sha256, row.has_vector, row.error)


def _info(row: Any) -> FileInfo:  # a FileRow, or a row of _INFO_COLUMNS
    return FileInfo(row.id, row.path, row.sha256, row.size, row.width, row.height, row.taken_at, row.caption,
                    row.date, row.date_source, row.camera, row.mtime_ns, row.text, _tags(row.tags))


def _tags(stored: str | None) -> dict[str, float] | None:
    return None if stored is None else json.loads(stored)


def _waiting(lacking: Any, limit: int | None, what: Any = FileRow) -> Any:
    """Indexed, usable rows a later phase has still to do (`lacking` says what they lack), the
    oldest first: what `needs_caption`, `needs_text`, `needs_tags` and `needs_backfill` ask."""
    return (select(what).where(FileRow.has_vector, FileRow.error.is_(None), lacking)
            .order_by(FileRow.id).limit(limit))


# What each later phase's rows lack (`_waiting`): its work still to do.
_LACKS = {"caption": FileRow.caption.is_(None), "text": FileRow.text_read.is_(False), "tags": FileRow.tags.is_(None)}


def tags_json(tags: dict[str, float]) -> str:
    """How tags are stored: compact JSON, so `"label":` finds a label (`passing`)."""
    return json.dumps(tags, separators=(",", ":"), ensure_ascii=False)


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _in_folder(folder: str) -> Any:
    """SQL: a row's path lies below `folder` (a prefix test, so `%` and `_` in names are plain)."""
    prefix = folder.rstrip("/") + "/"
    return func.substr(FileRow.path, 1, len(prefix)) == prefix


def passing(q: Any, folders: Sequence[str], date_from: datetime | None, date_until: datetime | None,
            cameras: Sequence[str] | None, tags: Sequence[str] = ()) -> Any:
    """`q` narrowed to indexed rows that pass the filters (see `Catalog.listing`); `tags`: every
    one of these labels (exact)."""
    q = q.where(FileRow.has_vector, FileRow.error.is_(None))
    if folders and "/" not in [f.rstrip("/") or "/" for f in folders]:
        q = q.where(or_(*(_in_folder(f) for f in folders)))
    if date_from is not None:
        q = q.where(FileRow.date >= date_from)
    if date_until is not None:
        q = q.where(FileRow.date < date_until)
    if cameras is not None:
        q = q.where(FileRow.camera.in_(list(cameras)))
    for label in tags:
        q = q.where(FileRow.tags.contains(json.dumps(label, ensure_ascii=False) + ":", autoescape=True))
    return q


# What `get` reads: every column a FileInfo holds (`_info` takes these rows as it takes ORM ones).
_INFO_COLUMNS = tuple(FileRow.__table__.c[name] for name in (
    "id", "path", "sha256", "size", "width", "height", "taken_at", "caption", "date", "date_source", "camera",
    "mtime_ns", "text", "tags"))


class Catalog:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)
        # Slowly changing facts this process has computed from the catalog, each kept (and aged)
        # by the module that computes it (`fulltext`'s common words).
        self.memo: dict[str, Any] = {}

    def among(self, expr: Any, ids: Sequence[int]) -> Any:
        """`expr IN ids` with the ids bound as one value (a JSON array on SQLite, an array on
        PostgreSQL): the statement stays the same for any list, so SQLAlchemy's compiled form is
        reused, where `in_` renders one parameter per id on every call (a search's 200
        candidates: ~1 ms a statement)."""
        ids = [int(i) for i in ids]
        if self.engine.dialect.name == "sqlite":
            listed = func.json_each(bindparam("among", json.dumps(ids)))
            return expr.in_(select(literal_column("value")).select_from(listed))
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy import BigInteger, any_
            from sqlalchemy.dialects.postgresql import ARRAY

            return expr == any_(bindparam("among", ids, type_=ARRAY(BigInteger)))
        return expr.in_(ids)

    @property
    def location(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def session(self) -> Session:
        return self._session()

    def close(self) -> None:
        self.engine.dispose()

    # --- the index as a whole -------------------------------------------------------------
    def check_models(self, facts: dict[str, str]) -> None:
        """Record which models built this index, or refuse to mix with other ones."""
        with self.session() as s, s.begin():
            stored = {m.key: m.value for m in s.scalars(select(MetaRow))}
            for key, value in facts.items():
                if key in stored and stored[key] != value:
                    raise StoreMismatchError(
                        f"this index was built with {key} = {stored[key]!r}, not {value!r}. "
                        "Use the same --models as before, or another --home for the new models."
                    )
                if key not in stored:
                    s.add(MetaRow(key=key, value=value))

    def adopt_captioner(self, captioner_id: str) -> bool:
        """Record the captioner; when it differs from the one that wrote the stored captions,
        drop them so they are written again. True when captions were dropped."""
        return self._adopt("captioner", captioner_id, {"caption": None})

    def adopt_text_reader(self, reader_id: str) -> bool:
        """The same for the OCR engine: another one reads every picture again."""
        return self._adopt("text_reader", reader_id, {"text": None, "text_read": False})

    def adopt_tagger(self, tagger_id: str) -> bool:
        """The same for the tag vocabulary (and the CLIP that embedded it): re-tag everything."""
        return self._adopt("tagger", tagger_id, {"tags": None})

    def _adopt(self, key: str, value: str, reset: dict[str, Any]) -> bool:
        with self.session() as s, s.begin():
            row = s.get(MetaRow, key)
            if row is not None and row.value == value:
                return False
            dropped = row is not None
            if dropped:
                s.execute(update(FileRow).values(**reset))
                row.value = value
            else:
                s.add(MetaRow(key=key, value=value))
            return dropped

    def meta(self) -> dict[str, str]:
        with self.session() as s:
            return {m.key: m.value for m in s.scalars(select(MetaRow))}

    def counts(self) -> CatalogCounts:
        with self.session() as s:
            def n(*where) -> int:  # type: ignore[no-untyped-def]
                return s.scalar(select(func.count()).select_from(FileRow).where(*where)) or 0

            return CatalogCounts(
                files=n(), images=n(FileRow.error.is_(None)), with_vector=n(FileRow.has_vector),
                captioned=n(FileRow.caption.is_not(None)), skipped=n(FileRow.error.is_not(None)),
                text_read=n(FileRow.text_read), tagged=n(FileRow.tags.is_not(None)),
            )

    def skipped(self) -> list[tuple[str, str]]:
        with self.session() as s:
            rows = s.execute(select(FileRow.path, FileRow.error).where(FileRow.error.is_not(None)))
            return [(p, e) for p, e in rows]

    # --- what the indexer reads -----------------------------------------------------------
    def files_under(self, roots: Sequence[str]) -> dict[str, KnownFile]:
        with self.session() as s:
            return {r.path: _known(r) for r in s.scalars(select(FileRow)) if _under(r.path, roots)}

    def reusable_by_sha(self) -> dict[str, FileInfo]:
        """One file with a vector per content hash: what a moved or duplicate file can copy."""
        with self.session() as s:
            rows = s.scalars(select(FileRow).where(FileRow.has_vector, FileRow.sha256.is_not(None)))
            return {r.sha256: _info(r) for r in rows if r.sha256}

    def content_hashes(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(FileRow.sha256).where(FileRow.sha256.is_not(None))))

    def vector_ids(self) -> set[int]:
        with self.session() as s:
            return set(s.scalars(select(FileRow.id).where(FileRow.has_vector)))

    def get(self, ids: Iterable[int]) -> dict[int, FileInfo]:
        """Every search reads its candidates' rows here: plain rows, not ORM objects (for 200
        candidates 1.4 ms against 5.8)."""
        ids = list(ids)
        if not ids:
            return {}
        with self.engine.connect() as c:
            rows = c.execute(select(*_INFO_COLUMNS).where(self.among(FileRow.__table__.c.id, ids)))
            return {r.id: _info(r) for r in rows}

    def needs_caption(self, limit: int, after: int = 0, claim: Claim | None = None) -> list[FileInfo]:
        """Indexed pictures without a caption (ids above `after`), claimed for `claim`'s writer
        when given (`_lacking`)."""
        return [_info(r) for r in self._lacking(_LACKS["caption"], limit, after, claim)]

    def needs_text(self, limit: int, after: int = 0, claim: Claim | None = None) -> list[FileInfo]:
        """Indexed pictures whose text has not been read yet; as `needs_caption`."""
        return [_info(r) for r in self._lacking(_LACKS["text"], limit, after, claim)]

    def needs_tags(self, limit: int, after: int = 0, claim: Claim | None = None) -> list[int]:
        """Ids of indexed pictures not tagged yet (their vectors are in the vector store); as
        `needs_caption`."""
        return [r.id for r in self._lacking(_LACKS["tags"], limit, after, claim)]

    def waiting(self, lacking: str) -> int:
        """How many indexed pictures still lack this ("caption", "text" or "tags"): a phase's size."""
        with self.session() as s:
            rows = _waiting(_LACKS[lacking], None, FileRow.id).subquery()
            return s.scalar(select(func.count()).select_from(rows)) or 0

    def _lacking(self, lacking: Any, limit: int, after: int, claim: Claim | None) -> list[FileRow]:
        """Rows a later phase has still to do, oldest first, above `after`. With a `claim` on
        PostgreSQL, only rows no other live writer has claimed, and they are claimed for this
        one in the same statement (`FOR UPDATE SKIP LOCKED`: two writers asking at once get
        different rows): several writers share a phase's work instead of each doing all of it.
        Its own earlier claims are not given again: a phase moves on by `after`, and releases
        what it did not finish (`release`)."""
        with self.session() as s, s.begin():
            if claim is None or self.engine.dialect.name != "postgresql":
                return list(s.scalars(_waiting(lacking, limit).where(FileRow.id > after)))
            live = select(WriterRow.id).where(WriterRow.seen >= self._clock() - claim.lease_s)
            pick = (_waiting(lacking, limit, FileRow.id)
                    .where(FileRow.id > after, or_(FileRow.claim.is_(None), FileRow.claim.not_in(live)))
                    .with_for_update(skip_locked=True))
            stmt = (update(FileRow).where(FileRow.id.in_(pick.scalar_subquery())).values(claim=claim.writer)
                    .returning(FileRow).execution_options(synchronize_session=False))
            return sorted(s.scalars(stmt), key=lambda r: r.id)

    def release(self, ids: Sequence[int], claim: Claim | None) -> None:
        """Give back this writer's claims on these rows (done or not): a row it did not finish
        (a phase stopped early) is free for the next run, its own included."""
        if claim is None or not ids or self.engine.dialect.name != "postgresql":
            return
        with self.session() as s, s.begin():
            s.execute(update(FileRow).where(FileRow.id.in_(list(ids)), FileRow.claim == claim.writer)
                      .values(claim=None).execution_options(synchronize_session=False))

    def set_tags(self, tags: dict[int, dict[str, float]]) -> None:
        if not tags:
            return
        files = FileRow.__table__
        stmt = update(files).where(files.c.id == bindparam("fid")).values(tags=bindparam("t"))
        with self.session() as s, s.begin():
            s.execute(stmt, [{"fid": i, "t": tags_json(t)} for i, t in tags.items()])

    def tag_counts(self, folders: Sequence[str] = ()) -> list[tuple[str, int]]:
        """Every label in use with how many pictures carry it, most first (then by name)."""
        counts: dict[str, int] = {}
        with self.session() as s:
            q = passing(select(FileRow.tags), folders, None, None, None).where(FileRow.tags.is_not(None))
            for stored in s.scalars(q.execution_options(yield_per=5000)):
                for label in json.loads(stored):
                    counts[label] = counts.get(label, 0) + 1
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def tagged_ids(self, labels: Sequence[str], limit: int | None = None) -> list[int]:
        """Indexed pictures that carry every one of these labels."""
        with self.session() as s:
            return list(s.scalars(passing(select(FileRow.id), (), None, None, None, labels).limit(limit)))

    def text_of_sha(self, shas: Iterable[str]) -> dict[str, str | None]:
        """The text already read of these contents (None: read, and there is none)."""
        with self.session() as s:
            q = select(FileRow.sha256, FileRow.text).where(FileRow.sha256.in_(list(shas)), FileRow.text_read)
            return {sha: t for sha, t in s.execute(q)}

    def set_texts(self, texts: dict[int, str | None]) -> None:
        with self.session() as s, s.begin():
            for fid, t in texts.items():
                s.execute(update(FileRow).where(FileRow.id == fid).values(text=t, text_read=True))

    def needs_backfill(self, limit: int) -> list[FileInfo]:
        """Indexed rows with no date yet: an index made before dates and cameras were kept."""
        with self.session() as s:
            return [_info(r) for r in s.scalars(_waiting(FileRow.date.is_(None), limit))]

    def cameras_like(self, text: str) -> list[str]:
        """The distinct cameras whose name contains `text`, ignoring case, sorted: what a
        `--camera canon` stands for as exact keys."""
        needle = text.strip().casefold()
        with self.session() as s:
            names = s.scalars(select(FileRow.camera).where(FileRow.camera.is_not(None)).distinct())
            return sorted(c for c in names if needle in c.casefold())

    def listing(
        self,
        folders: Sequence[str],
        date_from: datetime | None,
        date_until: datetime | None,
        cameras: Sequence[str] | None,
        newest_first: bool,
        limit: int,
        offset: int,
        tags: Sequence[str] = (),
    ) -> list[FileInfo]:
        """Indexed pictures that pass the filters, by date (id breaks ties), one page of them: a
        query with filters and no words. As `vectors.PointFilter`: folders are subtrees, any of
        them; dates from inclusive, until exclusive; cameras exact, None for any, () for none. A
        row without a date passes no date filter and comes last either way."""
        if cameras is not None and not cameras:
            return []
        q = passing(select(FileRow), folders, date_from, date_until, cameras, tags)
        order = (FileRow.date.desc(), FileRow.id.desc()) if newest_first else (FileRow.date, FileRow.id)
        q = q.order_by(FileRow.date.is_(None), *order).limit(limit).offset(offset)
        with self.session() as s:
            return [_info(r) for r in s.scalars(q)]

    def caption_of_sha(self, shas: Iterable[str]) -> dict[str, str]:
        with self.session() as s:
            q = select(FileRow.sha256, FileRow.caption).where(
                FileRow.sha256.in_(list(shas)), FileRow.caption.is_not(None))
            return {sha: cap for sha, cap in s.execute(q)}

    # --- what the indexer writes ----------------------------------------------------------
    def put_pending(self, files: Sequence[NewFile], writer: str | None = None) -> list[int]:
        """Insert or refresh rows (by path) that will get a vector; returns their ids. A row's
        id never changes, so re-embedding replaces its point instead of adding one. `writer`:
        who puts them pending (`stores.writers`): their points are in flight while it lives."""
        with self.session() as s, s.begin():
            by_path = {r.path: r for r in s.scalars(select(FileRow).where(FileRow.path.in_([f.path for f in files])))}
            rows = []
            for f in files:
                row = by_path.get(f.path) or FileRow(path=f.path)
                row.size, row.mtime_ns, row.sha256 = f.size, f.mtime_ns, f.sha256
                row.width, row.height, row.taken_at = f.width, f.height, f.taken_at
                row.date, row.date_source, row.camera = f.date, f.date_source, f.camera
                row.caption, row.error, row.has_vector = f.caption, None, False
                row.text, row.text_read, row.tags = None, False, None
                row.writer = writer
                s.add(row)
                rows.append(row)
            s.flush()
            return [r.id for r in rows]

    # --- writers at work on this catalog (imgsearch.stores.writers) ------------------------
    # Every time written to `writers` or compared with one is the database's clock (`_clock`), so
    # writers on machines whose clocks differ still agree on which leases are fresh.
    def _clock(self) -> Any:
        """SQL: now on the database's clock, in seconds since the epoch (PostgreSQL's clock, not
        the transaction's start; SQLite's is this machine's, where its one writer runs)."""
        if self.engine.dialect.name == "postgresql":
            return cast(extract("epoch", func.clock_timestamp()), Double)
        if self.engine.dialect.name == "sqlite":
            return (func.julianday("now") - 2440587.5) * 86400.0
        return literal(time.time(), Double)

    def add_writer(self, writer: str, name: str, forget_s: float | None = None) -> None:
        """Start a writer's lease; with `forget_s`, first drop the rows of writers not seen for
        that long (killed long ago: to everyone else they are as dead as a lapsed lease)."""
        with self.session() as s, s.begin():
            if forget_s is not None:
                s.execute(delete(WriterRow).where(WriterRow.seen < self._clock() - forget_s))
            self._insert_writer(s, writer, name)

    def refresh_writer(self, writer: str, name: str) -> bool:
        """Keep a lease fresh. A lease dropped meanwhile (`add_writer`'s `forget_s`: a writer that
        stood still that long, suspended or cut off) starts again: False then."""
        with self.session() as s, s.begin():
            if s.execute(update(WriterRow).where(WriterRow.id == writer).values(seen=self._clock())).rowcount:
                return True
            self._insert_writer(s, writer, name)
            return False

    def _insert_writer(self, s: Session, writer: str, name: str) -> None:
        now = self._clock()
        s.execute(insert(WriterRow).values(id=writer, name=name, started=now, seen=now))

    def remove_writer(self, writer: str) -> None:
        with self.session() as s, s.begin():
            s.execute(delete(WriterRow).where(WriterRow.id == writer))

    def in_flight(self, lease_s: float, other_than: str | None = None) -> set[int]:
        """Ids of rows still pending that a writer seen in the last `lease_s` seconds (not
        `other_than`) put pending: their points are that writer's batch in flight, not a crash's
        leftovers. A writer whose row is gone (`add_writer`'s `forget_s`) counts as dead."""
        q = (select(FileRow.id).join(WriterRow, FileRow.writer == WriterRow.id)
             .where(FileRow.has_vector.is_(False), WriterRow.seen >= self._clock() - lease_s))
        if other_than is not None:
            q = q.where(WriterRow.id != other_than)
        with self.session() as s:
            return set(s.scalars(q))

    def mark_vectors(self, ids: Sequence[int], value: bool = True) -> None:
        with self.session() as s, s.begin():
            s.execute(update(FileRow).where(FileRow.id.in_(list(ids))).values(has_vector=value, indexed_at=_now()))

    def record_skip(self, path: str, size: int, mtime_ns: int, reason: str) -> int | None:
        """Keep the reason a file was skipped; returns the id of a row that used to have a
        vector (its point must go), else None."""
        with self.session() as s, s.begin():
            row = s.scalar(select(FileRow).where(FileRow.path == path))
            had_vector = row.id if row is not None and row.has_vector else None
            row = row or FileRow(path=path)
            row.size, row.mtime_ns, row.error = size, mtime_ns, reason
            row.has_vector, row.caption, row.sha256 = False, None, None
            row.text, row.text_read, row.tags = None, False, None
            s.add(row)
            return had_vector

    def move(self, file_id: int, new_path: str, size: int, mtime_ns: int) -> None:
        with self.session() as s, s.begin():
            s.execute(update(FileRow).where(FileRow.id == file_id).values(path=new_path, size=size, mtime_ns=mtime_ns))

    def ids_under(self, path: str) -> dict[int, bool]:
        """Rows at `path` or below it (a file or a folder): id -> has_vector."""
        prefix = path.rstrip("/") + "/"
        with self.session() as s:
            q = select(FileRow.id, FileRow.has_vector).where(
                (FileRow.path == path) | (func.substr(FileRow.path, 1, len(prefix)) == prefix))
            return {i: v for i, v in s.execute(q)}

    def move_under(self, src: str, dest: str) -> tuple[int, list[int]]:
        """Rename a file's or a whole folder's rows from `src` to `dest`, keeping their ids (and
        so their vectors and captions). Rows already at a destination path are replaced by the
        moved ones, as the file system did. Returns how many rows moved and the ids of the
        replaced rows that had vectors (the caller deletes those points)."""
        src_prefix, dest_prefix = src.rstrip("/") + "/", dest.rstrip("/") + "/"
        with self.session() as s, s.begin():
            rows = list(s.scalars(select(FileRow).where(
                (FileRow.path == src) | (func.substr(FileRow.path, 1, len(src_prefix)) == src_prefix))))
            targets = [dest if r.path == src else dest_prefix + r.path[len(src_prefix):] for r in rows]
            replaced: list[int] = []
            if targets:
                replaced = list(s.scalars(select(FileRow.id).where(FileRow.path.in_(targets), FileRow.has_vector)))
                s.execute(delete(FileRow).where(FileRow.path.in_(targets)))
                s.flush()
            for row, target in zip(rows, targets):
                row.path = target
            return len(rows), replaced

    def info(self, file_id: int) -> FileInfo | None:
        with self.session() as s:
            row = s.get(FileRow, file_id)
            return _info(row) if row is not None and row.error is None else None

    def delete(self, ids: Sequence[int]) -> None:
        with self.session() as s, s.begin():
            s.execute(delete(FileRow).where(FileRow.id.in_(list(ids))))

    def set_dates(self, values: dict[int, tuple[datetime, str, str | None]]) -> None:
        """Date, its source and camera per id (a backfill, a touched or moved file)."""
        if not values:
            return
        files = FileRow.__table__
        # Core's executemany, not the ORM's bulk update: a row deleted meanwhile is no error here.
        stmt = update(files).where(files.c.id == bindparam("fid")).values(
            date=bindparam("d"), date_source=bindparam("src"), camera=bindparam("cam"))
        rows = [{"fid": i, "d": d, "src": src, "cam": cam} for i, (d, src, cam) in values.items()]
        with self.session() as s, s.begin():
            s.execute(stmt, rows)

    def set_captions(self, captions: dict[int, str]) -> None:
        with self.session() as s, s.begin():
            for fid, cap in captions.items():
                s.execute(update(FileRow).where(FileRow.id == fid).values(caption=cap))
