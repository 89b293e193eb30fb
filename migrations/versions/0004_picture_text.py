"""The text read in each picture (OCR), and the full-text index rebuilt to search it too.

`text` is NULL when the picture has none (or is not read yet); `text_read` says it was read, so a
picture without text is not read again. SQLite: `files_fts` gains a `text` column (FTS5 tables
cannot add one: dropped and made again from the catalog, captions and all).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_FOLDERS = "rtrim({p}.path, replace({p}.path, '/', ''))"
_NAME = "substr({p}.path, length(" + _FOLDERS + ") + 1)"
_TRIGGERS = ("files_fts_insert", "files_fts_delete", "files_fts_update")


def _insert(p: str, with_text: bool) -> str:
    columns, values = "rowid, name, folders, caption", f"{p}.id, {_NAME.format(p=p)}, {_FOLDERS.format(p=p)}, {p}.caption"
    if with_text:
        columns, values = columns + ", text", values + f", {p}.text"
    return f"INSERT INTO files_fts({columns}) VALUES ({values});"


def _make_index(with_text: bool) -> None:
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS files_fts")
    columns = "name, folders, caption" + (", text" if with_text else "")
    op.execute(f"CREATE VIRTUAL TABLE files_fts USING fts5({columns}, "
               "tokenize = 'porter unicode61 remove_diacritics 2')")
    op.execute(f"CREATE TRIGGER files_fts_insert AFTER INSERT ON files BEGIN {_insert('new', with_text)} END")
    op.execute("CREATE TRIGGER files_fts_delete AFTER DELETE ON files BEGIN "
               "DELETE FROM files_fts WHERE rowid = old.id; END")
    watched = "path, caption" + (", text" if with_text else "")
    op.execute(f"CREATE TRIGGER files_fts_update AFTER UPDATE OF {watched} ON files BEGIN "
               f"DELETE FROM files_fts WHERE rowid = old.id; {_insert('new', with_text)} END")
    rows = _insert("f", with_text).replace("VALUES (", "SELECT ").rstrip(");") + " FROM files AS f"
    op.execute(rows)


def upgrade() -> None:
    op.add_column("files", sa.Column("text", sa.Text(), nullable=True))
    op.add_column("files", sa.Column("text_read", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_index("ix_files_text_read", "files", ["text_read"])
    if op.get_bind().dialect.name == "sqlite":
        _make_index(with_text=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _make_index(with_text=False)
    op.drop_index("ix_files_text_read", "files")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("text_read")
        batch.drop_column("text")
