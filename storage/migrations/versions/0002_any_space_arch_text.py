"""any space: arch strings as text, longer space names

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.alter_column("space", existing_type=sa.String(length=16), type_=sa.String(length=64))
        batch_op.alter_column("arch", existing_type=sa.String(length=200), type_=sa.Text())
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("space", existing_type=sa.String(length=16), type_=sa.String(length=64))
    with op.batch_alter_table("job_tasks", schema=None) as batch_op:
        batch_op.alter_column("arch", existing_type=sa.String(length=200), type_=sa.Text())
        batch_op.alter_column("canonical", existing_type=sa.String(length=200), type_=sa.Text())


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("job_tasks", schema=None) as batch_op:
        batch_op.alter_column("canonical", existing_type=sa.Text(), type_=sa.String(length=200))
        batch_op.alter_column("arch", existing_type=sa.Text(), type_=sa.String(length=200))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.alter_column("space", existing_type=sa.String(length=64), type_=sa.String(length=16))
    with op.batch_alter_table("scores", schema=None) as batch_op:
        batch_op.alter_column("arch", existing_type=sa.Text(), type_=sa.String(length=200))
        batch_op.alter_column("space", existing_type=sa.String(length=64), type_=sa.String(length=16))
