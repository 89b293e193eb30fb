"""Writers working on one catalog at once (PostgreSQL and a Qdrant server shared by several
`index` runs, services or Ray jobs): each is a row in `writers` that it keeps fresh while it runs
(`seen`, seconds since the epoch), and marks the rows it has put pending (`files.writer`), so that
another writer's crash repair leaves its batch in flight alone, and the rows whose captions, text
or tags it is working on (`files.claim`), so that writers share that work instead of each doing
all of it (`imgsearch.stores.writers`).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "writers",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("started", sa.Double(), nullable=False),
        sa.Column("seen", sa.Double(), nullable=False),
    )
    op.add_column("files", sa.Column("writer", sa.String(32), nullable=True))
    op.add_column("files", sa.Column("claim", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("claim")
        batch.drop_column("writer")
    op.drop_table("writers")
