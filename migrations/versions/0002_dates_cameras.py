"""Each file's picture date (EXIF, else file time), its source and its camera, for filtered search.

Rows already there keep everything and get NULLs here; the indexer's backfill fills them from the
files' EXIF without re-embedding.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("files", sa.Column("date", sa.DateTime(), nullable=True))
    op.add_column("files", sa.Column("date_source", sa.String(8), nullable=True))
    op.add_column("files", sa.Column("camera", sa.Text(), nullable=True))
    op.create_index("ix_files_date", "files", ["date"])
    op.create_index("ix_files_camera", "files", ["camera"])


def downgrade() -> None:
    op.drop_index("ix_files_camera", "files")
    op.drop_index("ix_files_date", "files")
    with op.batch_alter_table("files") as batch:
        batch.drop_column("camera")
        batch.drop_column("date_source")
        batch.drop_column("date")
