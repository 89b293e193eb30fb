"""Zero-shot tags per picture (imgsearch.tags): `tags` is a JSON object, label -> probability,
of the labels kept; NULL while the picture is not tagged yet ('{}': tagged, none kept). A changed
vocabulary sets them all back to NULL (meta key `tagger`), and the tag phase re-tags from the
stored vectors.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("files", sa.Column("tags", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("tags")
