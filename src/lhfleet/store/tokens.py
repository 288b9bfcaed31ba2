"""API tokens, job ownership and quotas on SQL, beside the job store's tables.

Tokens are stored as the SHA-256 of their secret. Each job submitted over
the API has a row in ``token_jobs``. A row without a job is a reservation,
held while the job is being stored, so that quota checks count it.
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, Row

from lhfleet.errors import InvalidSettingError, NotFoundError, QuotaExceeded
from lhfleet.models import JobState
from lhfleet.ports import ApiToken, Quota, TokenStore
from lhfleet.store.schema import api_tokens, jobs, token_jobs
from lhfleet.store.sql import SqlJobStore

logger = logging.getLogger(__name__)

RESERVATION_SECONDS = 300.0
"""How long a reservation counts without its job: longer than storing any job."""


class SqlTokenStore(TokenStore):
    """A TokenStore in the job store's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def beside(cls, store: SqlJobStore) -> SqlTokenStore:
        """Return the token store in the same database as a job store."""
        return cls(store.engine)

    def create_token(
        self, name: str, secret_hash: str, admin: bool, quota: Quota, now: float
    ) -> ApiToken:
        token_id = f"tok_{secrets.token_hex(8)}"
        values = {
            "id": token_id,
            "name": name,
            "secret_hash": secret_hash,
            "admin": admin,
            "created_at": now,
            "max_running_jobs": quota.max_running_jobs,
            "max_runs_per_day": quota.max_runs_per_day,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(api_tokens.insert().values(values))
        except sa.exc.IntegrityError as error:
            raise InvalidSettingError(
                f"A token named {name!r} exists already. Choose another name, or "
                f"revoke the old one with `lhfleet token revoke {name}`."
            ) from error
        logger.info("created API token %s (%s, admin=%s)", name, token_id, admin)
        return self.get_token(name)

    def find_by_hash(self, secret_hash: str) -> ApiToken | None:
        query = api_tokens.select().where(api_tokens.c.secret_hash == secret_hash)
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _token(row)

    def get_token(self, name: str) -> ApiToken:
        with self.engine.connect() as conn:
            row = conn.execute(
                api_tokens.select().where(api_tokens.c.name == name)
            ).first()
        if row is None:
            raise NotFoundError(
                f"No API token named {name!r}. Run `lhfleet token list` to see "
                "the tokens."
            )
        return _token(row)

    def list_tokens(self) -> list[ApiToken]:
        query = api_tokens.select().order_by(api_tokens.c.created_at, api_tokens.c.id)
        with self.engine.connect() as conn:
            return [_token(row) for row in conn.execute(query)]

    def revoke(self, name: str, now: float) -> ApiToken:
        token = self.get_token(name)
        with self.engine.begin() as conn:
            conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token.id, api_tokens.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        logger.info("revoked API token %s (%s)", name, token.id)
        return self.get_token(name)

    def set_quota(self, name: str, quota: Quota) -> ApiToken:
        token = self.get_token(name)
        with self.engine.begin() as conn:
            conn.execute(
                api_tokens.update()
                .where(api_tokens.c.id == token.id)
                .values(
                    max_running_jobs=quota.max_running_jobs,
                    max_runs_per_day=quota.max_runs_per_day,
                )
            )
        logger.info("set the quota of API token %s: %s", name, quota)
        return self.get_token(name)

    def reserve(self, token: ApiToken, runs: int, now: float) -> str:
        with self.engine.begin() as conn:
            # Locks the token's row on PostgreSQL; SQLite's BEGIN IMMEDIATE
            # already serializes writers.
            conn.execute(
                sa.select(api_tokens.c.id)
                .where(api_tokens.c.id == token.id)
                .with_for_update()
            )
            _check_running(conn, token, now)
            _check_runs_per_day(conn, token, runs, now)
            reservation = f"res_{secrets.token_hex(8)}"
            conn.execute(
                token_jobs.insert().values(
                    id=reservation, token_id=token.id, runs=runs, created_at=now
                )
            )
        return reservation

    def attach(self, reservation: str, job_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                token_jobs.update()
                .where(token_jobs.c.id == reservation)
                .values(job_id=job_id)
            )

    def cancel_reservation(self, reservation: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                token_jobs.delete().where(
                    token_jobs.c.id == reservation, token_jobs.c.job_id.is_(None)
                )
            )

    def owner_of(self, job_id: str) -> str | None:
        query = sa.select(token_jobs.c.token_id).where(token_jobs.c.job_id == job_id)
        with self.engine.connect() as conn:
            value = conn.execute(query).scalar()
        return None if value is None else str(value)

    def owned_jobs(
        self, token_id: str | None, limit: int, offset: int, running_only: bool = False
    ) -> list[str]:
        query = _owned(token_id, running_only).with_only_columns(token_jobs.c.job_id)
        query = (
            query.order_by(token_jobs.c.created_at.desc(), token_jobs.c.job_id)
            .limit(limit)
            .offset(offset)
        )
        with self.engine.connect() as conn:
            return [str(job_id) for job_id in conn.execute(query).scalars()]

    def count_owned(self, token_id: str | None) -> int:
        query = _owned(token_id, False).with_only_columns(sa.func.count())
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)


def _owned(token_id: str | None, running_only: bool) -> sa.Select[Any]:
    query = sa.select(token_jobs.c.job_id).where(token_jobs.c.job_id.is_not(None))
    if token_id is not None:
        query = query.where(token_jobs.c.token_id == token_id)
    if running_only:
        query = query.join(jobs, jobs.c.id == token_jobs.c.job_id).where(
            jobs.c.state == JobState.RUNNING.value
        )
    return query


def day_start(now: float) -> float:
    """Return the start of the UTC day that contains ``now``."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def next_day_start(now: float) -> float:
    """Return when the UTC day after ``now``'s day starts: when daily quotas reset."""
    start = datetime.fromtimestamp(day_start(now), UTC)
    return (start + timedelta(days=1)).timestamp()


def _check_running(conn: Connection, token: ApiToken, now: float) -> None:
    limit = token.quota.max_running_jobs
    if limit is None:
        return
    running = sa.and_(
        token_jobs.c.job_id.is_not(None), jobs.c.state == JobState.RUNNING.value
    )
    reserved = sa.and_(
        token_jobs.c.job_id.is_(None),
        token_jobs.c.created_at > now - RESERVATION_SECONDS,
    )
    query = (
        sa.select(sa.func.count())
        .select_from(token_jobs.outerjoin(jobs, jobs.c.id == token_jobs.c.job_id))
        .where(token_jobs.c.token_id == token.id, sa.or_(running, reserved))
    )
    count = int(conn.execute(query).scalar() or 0)
    if count >= limit:
        raise QuotaExceeded(
            f"Token {token.name!r} has {count} jobs running; its quota is {limit} "
            "at once. Wait for one to complete, or cancel one.",
            quota="max_running_jobs",
            limit=limit,
            resets_at=None,
        )


def _check_runs_per_day(
    conn: Connection, token: ApiToken, runs: int, now: float
) -> None:
    limit = token.quota.max_runs_per_day
    if limit is None:
        return
    query = sa.select(sa.func.coalesce(sa.func.sum(token_jobs.c.runs), 0)).where(
        token_jobs.c.token_id == token.id,
        token_jobs.c.created_at >= day_start(now),
    )
    used = int(conn.execute(query).scalar() or 0)
    if used + runs > limit:
        resets = next_day_start(now)
        when = datetime.fromtimestamp(resets, UTC).isoformat()
        raise QuotaExceeded(
            f"Token {token.name!r} has submitted {used} runs today and this job "
            f"has {runs}; its quota is {limit} runs per day (UTC). Submit fewer "
            f"runs, or wait until {when}.",
            quota="max_runs_per_day",
            limit=limit,
            resets_at=resets,
        )


def _token(row: Row[Any]) -> ApiToken:
    return ApiToken(
        id=row.id,
        name=row.name,
        admin=bool(row.admin),
        created_at=float(row.created_at),
        revoked_at=None if row.revoked_at is None else float(row.revoked_at),
        quota=Quota(row.max_running_jobs, row.max_runs_per_day),
    )
