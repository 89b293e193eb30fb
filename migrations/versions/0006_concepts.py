"""Concepts taught by example (imgsearch.concepts): one row per concept, its name the key, with
its linear probe over CLIP vectors (`weights`: float32 little-endian, `bias`), the CLIP model it
belongs to, the examples it learnt from (`examples`: JSON, each with its vector, so new examples
retrain it without the old files), how it was trained (`params`: JSON) and when.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "concepts",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("clip_model", sa.Text(), nullable=False),
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("bias", sa.Double(), nullable=False),
        sa.Column("examples", sa.Text(), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("concepts")
