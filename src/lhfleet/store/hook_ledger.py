"""The ledger of hook deliveries on SQL, beside the job store's tables.

Every change of a delivery's state is a conditional UPDATE on its current
state and lease holder, as for runs. So two processes that both try to
deliver a job's hooks, such as a resumed job and a restarted server,
cannot both fire one hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, Row

from lhfleet.models import JobState
from lhfleet.ports import DeliveryAttempt, HookDelivery, HookLedger
from lhfleet.store.schema import hook_attempts, hook_deliveries, jobs
from lhfleet.store.sql import SqlJobStore

logger = logging.getLogger(__name__)

PENDING = "pending"
DELIVERING = "delivering"
DELIVERED = "delivered"
FAILED = "failed"
OWED = (PENDING, DELIVERING)


def delivery_id(job_id: str, index: int) -> str:
    """Return the id of a job's hook delivery: stable, so receivers can de-duplicate."""
    return f"{job_id}-hook{index}"


class SqlHookLedger(HookLedger):
    """A HookLedger in the job store's database (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def beside(cls, store: SqlJobStore) -> SqlHookLedger:
        """Return the ledger in the same database as a job store."""
        return cls(store.engine)

    def add_hooks(
        self, job_id: str, specs: Sequence[dict[str, Any]], now: float
    ) -> list[HookDelivery]:
        rows = [
            {
                "id": delivery_id(job_id, index),
                "job_id": job_id,
                "hook_index": index,
                "spec": dict(spec),
                "state": PENDING,
                "attempts": 0,
                "created_at": now,
            }
            for index, spec in enumerate(specs)
        ]
        if rows:
            with self.engine.begin() as conn:
                conn.execute(hook_deliveries.insert(), rows)
            logger.info(
                "job %s: recorded %d hooks to fire on completion", job_id, len(rows)
            )
        return self.deliveries(job_id)

    def deliveries(self, job_id: str) -> list[HookDelivery]:
        query = (
            hook_deliveries.select()
            .where(hook_deliveries.c.job_id == job_id)
            .order_by(hook_deliveries.c.hook_index)
        )
        with self.engine.connect() as conn:
            return [_delivery(row) for row in conn.execute(query)]

    def attempts(self, job_id: str) -> list[DeliveryAttempt]:
        query = (
            sa.select(hook_attempts)
            .join(hook_deliveries, hook_deliveries.c.id == hook_attempts.c.delivery_id)
            .where(hook_deliveries.c.job_id == job_id)
            .order_by(hook_attempts.c.started_at, hook_attempts.c.id)
        )
        with self.engine.connect() as conn:
            return [_attempt(row) for row in conn.execute(query)]

    def claim_next(
        self,
        job_id: str,
        owner: str,
        lease_seconds: float,
        now: float,
        is_gone: Callable[[str], bool],
    ) -> HookDelivery | None:
        for candidate in self._owed(job_id):
            lapsed = (
                candidate.lease_expires is not None and candidate.lease_expires < now
            )
            gone = candidate.lease_owner is not None and is_gone(candidate.lease_owner)
            if candidate.state == DELIVERING and not (lapsed or gone):
                continue
            claimed = self._lease(candidate, owner, now + lease_seconds)
            if claimed is not None:
                if candidate.state == DELIVERING:
                    logger.warning(
                        "job %s: hook delivery %s was left by %s; delivering it again",
                        job_id,
                        candidate.id,
                        candidate.lease_owner,
                    )
                return claimed
        return None

    def _owed(self, job_id: str) -> list[Row[Any]]:
        query = (
            sa.select(hook_deliveries)
            .join(jobs, jobs.c.id == hook_deliveries.c.job_id)
            .where(
                hook_deliveries.c.job_id == job_id,
                hook_deliveries.c.state.in_(OWED),
                jobs.c.state == JobState.COMPLETED.value,
            )
            .order_by(hook_deliveries.c.hook_index)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def _lease(self, seen: Row[Any], owner: str, expires: float) -> HookDelivery | None:
        held_by = hook_deliveries.c.lease_owner
        same_holder = (
            held_by.is_(None)
            if seen.lease_owner is None
            else held_by == seen.lease_owner
        )
        statement = (
            hook_deliveries.update()
            .where(
                hook_deliveries.c.id == seen.id,
                hook_deliveries.c.state == seen.state,
                same_holder,
            )
            .values(state=DELIVERING, lease_owner=owner, lease_expires=expires)
            .returning(*hook_deliveries.c)
        )
        with self.engine.begin() as conn:
            row = conn.execute(statement).first()
        return None if row is None else _delivery(row)

    def record_attempt(
        self, attempt: DeliveryAttempt, owner: str, lease_until: float
    ) -> bool:
        with self.engine.begin() as conn:
            updated = conn.execute(
                hook_deliveries.update()
                .where(
                    hook_deliveries.c.id == attempt.delivery_id,
                    hook_deliveries.c.state == DELIVERING,
                    hook_deliveries.c.lease_owner == owner,
                )
                .values(
                    attempts=hook_deliveries.c.attempts + 1,
                    last_error=attempt.error,
                    lease_expires=lease_until,
                )
            ).rowcount
            if updated != 1:
                return False
            conn.execute(
                hook_attempts.insert().values(
                    delivery_id=attempt.delivery_id,
                    number=attempt.number,
                    started_at=attempt.started_at,
                    duration=attempt.duration,
                    ok=attempt.ok,
                    status_code=attempt.status_code,
                    error=attempt.error,
                )
            )
        return True

    def finish(
        self,
        delivery_id: str,
        owner: str,
        delivered: bool,
        error: str | None,
        now: float,
    ) -> bool:
        statement = (
            hook_deliveries.update()
            .where(
                hook_deliveries.c.id == delivery_id,
                hook_deliveries.c.state == DELIVERING,
                hook_deliveries.c.lease_owner == owner,
            )
            .values(
                state=DELIVERED if delivered else FAILED,
                lease_owner=None,
                lease_expires=None,
                last_error=error,
                delivered_at=now if delivered else None,
            )
        )
        with self.engine.begin() as conn:
            return conn.execute(statement).rowcount == 1

    def redeliver_failed(self, job_id: str) -> int:
        statement = (
            hook_deliveries.update()
            .where(
                hook_deliveries.c.job_id == job_id,
                hook_deliveries.c.state == FAILED,
            )
            .values(state=PENDING)
        )
        with self.engine.begin() as conn:
            count = int(conn.execute(statement).rowcount)
        logger.info(
            "job %s: %d failed hook deliveries made pending again", job_id, count
        )
        return count

    def jobs_owing(self) -> list[str]:
        query = (
            sa.select(hook_deliveries.c.job_id)
            .join(jobs, jobs.c.id == hook_deliveries.c.job_id)
            .where(
                hook_deliveries.c.state.in_(OWED),
                jobs.c.state == JobState.COMPLETED.value,
            )
            .distinct()
            .order_by(hook_deliveries.c.job_id)
        )
        with self.engine.connect() as conn:
            return [str(job_id) for job_id in conn.execute(query).scalars()]


def _delivery(row: Row[Any]) -> HookDelivery:
    return HookDelivery(
        id=row.id,
        job_id=row.job_id,
        index=row.hook_index,
        spec=dict(row.spec or {}),
        state=row.state,
        attempts=row.attempts,
        last_error=row.last_error,
        created_at=float(row.created_at),
        delivered_at=None if row.delivered_at is None else float(row.delivered_at),
    )


def _attempt(row: Row[Any]) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=row.delivery_id,
        number=row.number,
        started_at=float(row.started_at),
        duration=float(row.duration),
        ok=bool(row.ok),
        status_code=row.status_code,
        error=row.error,
    )
