"""Outbox delivery: claim leases on outbox rows and each message's state per sink.

Revision ID: 0003_outbox_delivery
Revises: 0002
Create Date: 2026-11-29

Written by hand. The new outbox columns are nullable, so they are added in place on both
backends (SQLite's ADD COLUMN needs no table copy). Rows pending before this revision have
no lease and no per-sink state: the dispatcher sends them to every configured sink.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_outbox_delivery"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TIME = sa.DateTime(timezone=True)
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column("outbox", sa.Column("claimed_until", UTC_TIME, nullable=True))
    op.add_column("outbox", sa.Column("claimed_by", sa.String(128), nullable=True))
    op.add_column("outbox", sa.Column("claim_token", sa.String(32), nullable=True))
    op.add_column("outbox", sa.Column("last_attempt_at", UTC_TIME, nullable=True))
    op.create_index(
        "ix_outbox_dead", "outbox", ["id"],
        sqlite_where=sa.text("dead"), postgresql_where=sa.text("dead"),
    )
    op.create_table(
        "outbox_deliveries",
        sa.Column("outbox_id", AUTO_ID, nullable=False),
        sa.Column("sink", sa.String(64), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("delivered_at", UTC_TIME, nullable=True),
        sa.Column("dead", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_attempt_at", UTC_TIME, nullable=True),
        sa.ForeignKeyConstraint(
            ["outbox_id"], ["outbox.id"], ondelete="CASCADE",
            name="fk_outbox_deliveries_outbox_id_outbox",
        ),
        sa.PrimaryKeyConstraint("outbox_id", "sink", name="pk_outbox_deliveries"),
    )


def downgrade() -> None:
    op.drop_table("outbox_deliveries")
    op.drop_index("ix_outbox_dead", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("last_attempt_at")
        batch.drop_column("claim_token")
        batch.drop_column("claimed_by")
        batch.drop_column("claimed_until")
