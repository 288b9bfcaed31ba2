"""Add API tokens, job ownership and the ledger of hook deliveries.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float),
        sa.Column("max_running_jobs", sa.Integer),
        sa.Column("max_runs_per_day", sa.Integer),
    )
    op.create_table(
        "token_jobs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column(
            "token_id",
            sa.String(40),
            sa.ForeignKey("api_tokens.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "job_id",
            sa.String(40),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            unique=True,
        ),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_token_jobs_token", "token_jobs", ["token_id", "created_at"])
    op.create_table(
        "hook_deliveries",
        sa.Column("id", sa.String(60), primary_key=True),
        sa.Column(
            "job_id",
            sa.String(40),
            sa.ForeignKey("jobs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("hook_index", sa.Integer, nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(200)),
        sa.Column("lease_expires", sa.Float),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float),
    )
    op.create_index("ix_hook_deliveries_state", "hook_deliveries", ["state", "job_id"])
    op.create_table(
        "hook_attempts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "delivery_id",
            sa.String(60),
            sa.ForeignKey("hook_deliveries.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
    )
    op.create_index(
        "ix_hook_attempts_delivery", "hook_attempts", ["delivery_id", "number"]
    )


def downgrade() -> None:
    op.drop_table("hook_attempts")
    op.drop_table("hook_deliveries")
    op.drop_table("token_jobs")
    op.drop_table("api_tokens")
