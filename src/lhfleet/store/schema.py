"""Tables of the SQL job store, shared by SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    sa.Column("secrets", sa.JSON, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("succeeded", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(80), primary_key=True),
    sa.Column(
        "job_id",
        sa.String(40),
        sa.ForeignKey("jobs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("url_index", sa.Integer, nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("run_index", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_expires", sa.Float),
    sa.Column("not_before", sa.Float, nullable=False, server_default="0"),
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("stderr_tail", sa.Text),
    sa.Column("facts", sa.JSON),
    sa.Column("report_json", sa.Text),
    sa.Column("report_html", sa.Text),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("label", sa.Text),
    sa.Column("meta", sa.JSON),
    sa.Index("ix_runs_job_due", "job_id", "state", "not_before"),
    sa.Index("ix_runs_job_order", "job_id", "url_index", "run_index"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("admin", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float),
    sa.Column("max_running_jobs", sa.Integer),
    sa.Column("max_runs_per_day", sa.Integer),
)

token_jobs = sa.Table(
    "token_jobs",
    metadata,
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
    sa.Index("ix_token_jobs_token", "token_id", "created_at"),
)

hook_deliveries = sa.Table(
    "hook_deliveries",
    metadata,
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
    sa.Index("ix_hook_deliveries_state", "state", "job_id"),
)

hook_attempts = sa.Table(
    "hook_attempts",
    metadata,
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
    sa.Index("ix_hook_attempts_delivery", "delivery_id", "number"),
)
