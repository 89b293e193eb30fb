"""The catalog's tables (SQLAlchemy 2 declarative). Changing them needs a migration in
`migrations/versions/`; a test checks the two agree."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Double, Integer, String, Text, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class FileRow(Base):
    """One file on disk. Its id is also its point id in the vector store."""

    __tablename__ = "files"

    # 64-bit (Qdrant point ids are); SQLite's INTEGER PRIMARY KEY is already, and must stay that
    # type to remain the rowid (migration 0007 widens it on PostgreSQL).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=True)
    path: Mapped[str] = mapped_column(Text, unique=True, index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    mtime_ns: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime)
    # True once the vector is in the vector store (set only after the upsert returned).
    has_vector: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    caption: Mapped[str | None] = mapped_column(Text)
    # Why the file was skipped (one line); NULL for a usable image.
    error: Mapped[str | None] = mapped_column(Text)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The date the picture is filed under (`imgsearch.dates.picture_date`: EXIF, else the file's
    # mtime), where it came from ("exif" | "file"), and the camera (EXIF "Make Model"). NULL date
    # on an indexed row: an index older than these columns, still to be backfilled.
    date: Mapped[datetime | None] = mapped_column(DateTime, index=True)
    date_source: Mapped[str | None] = mapped_column(String(8))
    camera: Mapped[str | None] = mapped_column(Text, index=True)
    # The text read in the picture (OCR; NULL: none, or not read yet) and whether it was read.
    text: Mapped[str | None] = mapped_column(Text)
    text_read: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), index=True)
    # Zero-shot tags (imgsearch.tags): JSON label -> probability; NULL: not tagged yet.
    tags: Mapped[str | None] = mapped_column(Text)
    # The writer (`WriterRow`) that last put the row pending: its batch is in flight while that
    # writer lives and the row has no vector yet (migration 0008).
    writer: Mapped[str | None] = mapped_column(String(32))
    # The writer doing a later phase's work on the row now (captions, text, tags; PostgreSQL):
    # other writers leave it while that writer lives (`Catalog.needs_caption`, migration 0008).
    claim: Mapped[str | None] = mapped_column(String(32))


class WriterRow(Base):
    """A process writing to this catalog now (`imgsearch.stores.writers`), alive while `seen`
    (seconds since the epoch, on the database's clock) is recent."""

    __tablename__ = "writers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    started: Mapped[float] = mapped_column(Double)
    seen: Mapped[float] = mapped_column(Double)


class MetaRow(Base):
    """Facts about the index as a whole: which models built it, the vector size."""

    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def described(name: str | None, type_: str, _parent: object = None) -> bool:
    """Alembic's `include_name`: the full-text index (on SQLite `files_fts` and its shadow tables,
    made by migration 0003 in raw SQL; on PostgreSQL the generated column `files.fts` and its GIN
    index, migration 0007) is not described by these models; autogenerate leaves it alone."""
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith("files_fts")
    return not (type_ == "column" and name == "fts" or type_ == "index" and name == "ix_files_fts")


class ConceptRow(Base):
    """A concept taught by example (`imgsearch.concepts`, stored by `imgsearch.stores.concepts`):
    its linear probe over CLIP vectors and the examples it learnt from."""

    __tablename__ = "concepts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    clip_model: Mapped[str] = mapped_column(Text)
    weights: Mapped[bytes] = mapped_column()  # float32 little-endian, one per CLIP dimension
    bias: Mapped[float] = mapped_column()
    examples: Mapped[str] = mapped_column(Text)  # JSON: [ConceptExample.as_json(), ...]
    params: Mapped[str] = mapped_column(Text)  # JSON: {"random_negatives": n, "c": C}
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
