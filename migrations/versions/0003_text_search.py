"""A full-text index over each picture's file name, folder names and caption, for hybrid search.

SQLite only (FTS5, Porter stemming over unicode61, accents folded). Triggers on `files` keep it
in step whatever writes the catalog; rows already there are indexed here, from the stored
captions. Other databases get no such table: their searches are vector-only (the searcher says so).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLite has no basename(): rtrim(path, <path without '/'>) strips the name, leaving "dir/".
_FOLDERS = "rtrim({p}.path, replace({p}.path, '/', ''))"
_NAME = "substr({p}.path, length(" + _FOLDERS + ") + 1)"


def _insert(p: str) -> str:
    return (f"INSERT INTO files_fts(rowid, name, folders, caption) VALUES "
            f"({p}.id, {_NAME.format(p=p)}, {_FOLDERS.format(p=p)}, {p}.caption);")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("CREATE VIRTUAL TABLE files_fts USING fts5(name, folders, caption, "
               "tokenize = 'porter unicode61 remove_diacritics 2')")
    op.execute(f"CREATE TRIGGER files_fts_insert AFTER INSERT ON files BEGIN {_insert('new')} END")
    op.execute("CREATE TRIGGER files_fts_delete AFTER DELETE ON files BEGIN "
               "DELETE FROM files_fts WHERE rowid = old.id; END")
    op.execute("CREATE TRIGGER files_fts_update AFTER UPDATE OF path, caption ON files BEGIN "
               f"DELETE FROM files_fts WHERE rowid = old.id; {_insert('new')} END")
    op.execute("INSERT INTO files_fts(rowid, name, folders, caption) SELECT f.id, "
               f"{_NAME.format(p='f')}, {_FOLDERS.format(p='f')}, f.caption FROM files AS f")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in ("files_fts_insert", "files_fts_delete", "files_fts_update"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS files_fts")
