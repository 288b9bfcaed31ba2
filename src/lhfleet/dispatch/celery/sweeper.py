"""Publishes runs again whose task may be gone, so that no run waits forever.

The broker redelivers the task of a worker that died, but Redis only does
so after its visibility timeout (an hour by default), and a broker that
lost its data (a restart without persistence) never does. The sweeper
looks in the job store for runs of unfinished jobs that no worker is
auditing: leases that expired, leases of processes on this host that exited,
and queued runs that have been due for longer than ``stale_after``. It
publishes a task for each; a run that turns out to have a task already
gets two, and the second delivery ends at once.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from lhfleet.dispatch.celery.config import ClusterConfig
from lhfleet.errors import LhfleetError
from lhfleet.models import JobState, RunState
from lhfleet.owners import is_gone
from lhfleet.store.schema import jobs, runs
from lhfleet.store.sql import SqlJobStore

logger = logging.getLogger(__name__)

BATCH = 1000


class Sweeper:
    """Finds runs that no task will deliver and publishes them again."""

    def __init__(
        self,
        store: SqlJobStore,
        publish: Callable[[list[str]], int],
        config: ClusterConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.publish = publish
        self.config = config
        self.clock = clock
        self._recent: dict[str, float] = {}

    def sweep(self, job_id: str | None = None) -> int:
        """Publish the forgotten runs of one job, or of every running job."""
        now = self.clock()
        candidates = self._expired(job_id, now) + self._stale(job_id, now)
        candidates = list(dict.fromkeys(candidates + self._orphaned(job_id)))
        self._remember_only(candidates, now - self.config.stale_seconds)
        fresh = [run for run in candidates if run not in self._recent]
        if not fresh:
            return 0
        published = self.publish(fresh)
        self._recent.update(dict.fromkeys(fresh[:published], now))
        logger.info(
            "sweeper published %d runs again%s",
            published,
            f" of job {job_id}" if job_id else "",
        )
        return published

    def run_forever(self, stop: threading.Event) -> None:
        """Sweep every ``sweep_interval`` s (with jitter) until ``stop`` is set."""
        interval = self.config.sweep_interval
        logger.info("sweeper started: every %g s", interval)
        while not stop.wait(interval * random.uniform(0.8, 1.2)):
            try:
                self.sweep()
            except (LhfleetError, sa.exc.SQLAlchemyError) as error:
                logger.warning("sweep failed, trying again later: %s", error)
            except Exception:
                logger.exception("sweep crashed; trying again later")
        logger.info("sweeper stopped")

    def _expired(self, job_id: str | None, now: float) -> list[str]:
        condition = sa.and_(
            runs.c.state == RunState.RUNNING.value, runs.c.lease_expires < now
        )
        return self._select(runs.c.id, condition, job_id)

    def _stale(self, job_id: str | None, now: float) -> list[str]:
        cutoff = now - self.config.stale_seconds
        condition = sa.and_(
            runs.c.state == RunState.QUEUED.value,
            runs.c.not_before < cutoff,
            jobs.c.created_at < cutoff,
        )
        return self._select(runs.c.id, condition, job_id)

    def _orphaned(self, job_id: str | None) -> list[str]:
        """Return runs leased by processes on this host that have exited."""
        here = f"{socket.gethostname()}/%"
        condition = sa.and_(
            runs.c.state == RunState.RUNNING.value, runs.c.lease_owner.like(here)
        )
        query = sa.select(runs.c.id, runs.c.lease_owner)
        rows = self._rows(query, condition, job_id)
        return [row[0] for row in rows if is_gone(row[1])]

    def _select(
        self,
        column: sa.Column[Any],
        condition: sa.ColumnElement[bool],
        job_id: str | None,
    ) -> list[str]:
        return [row[0] for row in self._rows(sa.select(column), condition, job_id)]

    def _rows(
        self,
        query: sa.Select[Any],
        condition: sa.ColumnElement[bool],
        job_id: str | None,
    ) -> list[tuple[Any, ...]]:
        which = jobs.c.state == JobState.RUNNING.value
        if job_id is not None:
            which = sa.and_(which, jobs.c.id == job_id)
        statement = (
            query.select_from(runs.join(jobs, runs.c.job_id == jobs.c.id))
            .where(which, condition)
            .limit(BATCH)
        )
        with self.store.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(statement)]

    def _remember_only(self, candidates: list[str], cutoff: float) -> None:
        """Forget runs published long ago, or that someone has picked up since.

        A run that was leased again and then lost again is published again.
        """
        wanted = set(candidates)
        self._recent = {
            run: at
            for run, at in self._recent.items()
            if run in wanted and at >= cutoff
        }
