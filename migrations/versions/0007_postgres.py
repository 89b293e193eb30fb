"""The catalog on PostgreSQL: 64-bit ids (they are Qdrant point ids) and a full-text index.

PostgreSQL only; nothing changes on SQLite, whose ids are already 64-bit and whose full text is
the FTS5 table of migrations 0003/0004. Here `files.fts` is a generated `tsvector` over the
file name (weight A), the folder names (B), the caption (C) and the text read in the picture (D),
English stemming, ASCII punctuation read as spaces (so '_', '-', '.' and '/' separate words, as
in FTS5's unicode61), with a GIN index. The server computes it on every insert and update, rows
already there included, so no trigger keeps it in step. `imgsearch.stores.fulltext` reads it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_WORDS = "regexp_replace({}, '[[:punct:]]+', ' ', 'g')"
NAME = _WORDS.format("regexp_replace(path, '^.*/', '')")
FOLDERS = _WORDS.format("regexp_replace(path, '[^/]*$', '')")
FIELDS = {"name": ("A", NAME), "folders": ("B", FOLDERS),
          "caption": ("C", _WORDS.format("coalesce(caption, '')")), "text": ("D", _WORDS.format("coalesce(text, '')"))}
FTS = " || ".join(f"setweight(to_tsvector('english', {expr}), '{weight}')" for weight, expr in FIELDS.values())


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE files ALTER COLUMN id TYPE BIGINT")
    op.execute("ALTER SEQUENCE IF EXISTS files_id_seq AS BIGINT")
    op.execute(f"ALTER TABLE files ADD COLUMN fts tsvector GENERATED ALWAYS AS ({FTS}) STORED")
    op.execute("CREATE INDEX ix_files_fts ON files USING gin (fts)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_files_fts")
    op.execute("ALTER TABLE files DROP COLUMN IF EXISTS fts")
    op.execute("ALTER SEQUENCE IF EXISTS files_id_seq AS INTEGER")
    op.execute("ALTER TABLE files ALTER COLUMN id TYPE INTEGER")
