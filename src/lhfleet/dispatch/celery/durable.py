"""The SQL job store as a worker on another machine needs it: patient and exact.

A worker that finished an audit while the database is down retries the
write until the database is back, instead of losing the outcome. A retry
after a dropped connection is ambiguous, because the first attempt may have
committed before the connection dropped. So the store reads the run back
and recognises its own write by the timestamp it wrote.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import sqlalchemy as sa

from lhfleet.errors import StoreError
from lhfleet.lhr import ReportFacts
from lhfleet.models import Job, JobSecrets, JobSettings, JobState, Run, RunState, Target
from lhfleet.ports import Failure, JobStore, Settlement
from lhfleet.store.schema import jobs, runs
from lhfleet.store.sql import SqlJobStore

logger = logging.getLogger(__name__)

T = TypeVar("T")
TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError)
RETRY_BASE = 0.5
RETRY_CAP = 15.0
NOT_RECORDED = Settlement(recorded=False, settled=False, completed_job=False)


@dataclass(frozen=True)
class LeaseView:
    """A run's lease and schedule, which the domain's Run does not carry."""

    state: RunState
    owner: str | None
    expires: float | None
    not_before: float
    finished_at: float | None


def read_lease(store: SqlJobStore, run_id: str) -> LeaseView | None:
    """Return the lease of a run, or None when the run does not exist."""
    query = sa.select(
        runs.c.state,
        runs.c.lease_owner,
        runs.c.lease_expires,
        runs.c.not_before,
        runs.c.finished_at,
    ).where(runs.c.id == run_id)
    with store.engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        return None
    return LeaseView(RunState(row[0]), row[1], row[2], float(row[3]), row[4])


class DurableJobStore(JobStore):
    """A SqlJobStore whose calls wait out a database outage of ``patience`` s."""

    def __init__(
        self,
        inner: SqlJobStore,
        patience: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.patience = patience
        self._sleep = sleep
        self._clock = clock

    def lease(self, run_id: str) -> LeaseView | None:
        return self._call(
            f"reading run {run_id}", lambda: read_lease(self.inner, run_id)
        )

    def create_job(
        self,
        settings: JobSettings,
        secrets: JobSecrets,
        targets: Iterable[Target | str],
    ) -> Job:
        # Not retried: a retry after a lost commit would create a second job.
        return self.inner.create_job(settings, secrets, targets)

    def get_job(self, job_id: str) -> Job:
        return self._call(f"reading job {job_id}", lambda: self.inner.get_job(job_id))

    def list_jobs(self, limit: int = 50, offset: int = 0) -> list[Job]:
        return self._call("listing jobs", lambda: self.inner.list_jobs(limit, offset))

    def get_secrets(self, job_id: str) -> JobSecrets:
        return self._call(
            f"reading job {job_id}", lambda: self.inner.get_secrets(job_id)
        )

    def iter_runs(self, job_id: str) -> Iterator[Run]:
        return self.inner.iter_runs(job_id)

    def get_run(self, run_id: str) -> Run:
        return self._call(f"reading run {run_id}", lambda: self.inner.get_run(run_id))

    def claim_next(
        self, job_id: str, owner: str, lease_seconds: float, now: float
    ) -> Run | None:
        return self._call(
            f"leasing a run of job {job_id}",
            lambda: self.inner.claim_next(job_id, owner, lease_seconds, now),
        )

    def claim(
        self, run_id: str, owner: str, lease_seconds: float, now: float
    ) -> Run | None:
        attempt = _Attempt(lambda: self.inner.claim(run_id, owner, lease_seconds, now))
        run = self._call(f"leasing run {run_id}", attempt)
        if run is not None or not attempt.failed:
            return run
        view = self.lease(run_id)
        if view and view.state is RunState.RUNNING and view.owner == owner:
            logger.info("run %s: the lease taken before the outage is ours", run_id)
            return self.get_run(run_id)
        return None

    def record_success(
        self,
        run_id: str,
        owner: str,
        facts: ReportFacts,
        report_json: str,
        report_html: str,
        now: float,
    ) -> Settlement:
        attempt = _Attempt(
            lambda: self.inner.record_success(
                run_id, owner, facts, report_json, report_html, now
            )
        )
        return self._settle(run_id, attempt, now, None)

    def record_failure(
        self, run_id: str, owner: str, failure: Failure, now: float
    ) -> Settlement:
        attempt = _Attempt(
            lambda: self.inner.record_failure(run_id, owner, failure, now)
        )
        return self._settle(run_id, attempt, now, failure.retry_at)

    def release(self, run_id: str, owner: str) -> bool:
        return self._call(
            f"releasing run {run_id}", lambda: self.inner.release(run_id, owner)
        )

    def release_owners(self, job_id: str, is_gone: Callable[[str], bool]) -> int:
        return self._call(
            f"releasing runs of job {job_id}",
            lambda: self.inner.release_owners(job_id, is_gone),
        )

    def abandon(self, job_id: str, failure: Failure, now: float) -> Settlement:
        return self._call(
            f"failing the queued runs of job {job_id}",
            lambda: self.inner.abandon(job_id, failure, now),
        )

    def delete_jobs(self, created_before: float) -> list[str]:
        return self._call(
            "deleting old jobs", lambda: self.inner.delete_jobs(created_before)
        )

    def requeue_failed(self, job_id: str, now: float) -> int:
        return self._call(
            f"queueing the failed runs of job {job_id}",
            lambda: self.inner.requeue_failed(job_id, now),
        )

    def next_due(self, job_id: str) -> float | None:
        return self._call(f"reading job {job_id}", lambda: self.inner.next_due(job_id))

    def _settle(
        self,
        run_id: str,
        attempt: _Attempt[Settlement],
        now: float,
        retry_at: float | None,
    ) -> Settlement:
        settlement = self._call(f"recording the outcome of run {run_id}", attempt)
        if settlement.recorded or not attempt.failed:
            return settlement
        return self._settlement_of_lost_reply(run_id, now, retry_at)

    def _settlement_of_lost_reply(
        self, run_id: str, now: float, retry_at: float | None
    ) -> Settlement:
        """Tell whether an attempt whose reply was lost did commit, and what it did.

        A settling write stamps the run (and the job it completes) with the
        writer's ``now``; a re-queue stamps ``not_before`` with its retry time.
        """
        view = self.lease(run_id)
        if view is None:
            return NOT_RECORDED
        if view.state is RunState.QUEUED and retry_at is not None:
            ours = math.isclose(view.not_before, retry_at, abs_tol=1e-6)
            return Settlement(recorded=ours, settled=False, completed_job=False)
        if not view.state.settled or view.finished_at is None:
            return NOT_RECORDED
        if not math.isclose(view.finished_at, now, abs_tol=1e-6):
            return NOT_RECORDED
        logger.info("run %s: the outcome written before the outage is ours", run_id)
        completed = self._completed_at(run_id.rsplit("-", 2)[0], now)
        return Settlement(recorded=True, settled=True, completed_job=completed)

    def _completed_at(self, job_id: str, now: float) -> bool:
        query = sa.select(jobs.c.state, jobs.c.finished_at).where(jobs.c.id == job_id)

        def read() -> bool:
            with self.inner.engine.connect() as conn:
                row = conn.execute(query).first()
            if row is None or row[0] != JobState.COMPLETED.value or row[1] is None:
                return False
            return math.isclose(float(row[1]), now, abs_tol=1e-6)

        return self._call(f"reading job {job_id}", read)

    def _call(self, what: str, action: Callable[[], T]) -> T:
        """Run ``action``, retrying while the database is unreachable."""
        deadline = self._clock() + self.patience
        failures = 0
        while True:
            try:
                return action()
            except TRANSIENT as error:
                failures += 1
                if self._clock() >= deadline:
                    raise StoreError(
                        f"The job store was unreachable for {self.patience:g} s "
                        f"while {what}: {_reason(error)}. Check the database; the "
                        "run stays leased and is audited again when its lease ends."
                    ) from error
                delay = min(RETRY_CAP, RETRY_BASE * 2**failures)
                delay *= random.uniform(0.8, 1.2)
                logger.warning(
                    "job store unreachable while %s (failure %d): %s; "
                    "retrying in %.1f s",
                    what,
                    failures,
                    _reason(error),
                    delay,
                )
                self._sleep(delay)


class _Attempt(Generic[T]):
    """A store call that remembers whether one of its tries failed part way."""

    def __init__(self, action: Callable[[], T]) -> None:
        self.action = action
        self.failed = False

    def __call__(self) -> T:
        try:
            return self.action()
        except TRANSIENT:
            self.failed = True
            raise


def _reason(error: sa.exc.DBAPIError) -> str:
    """Return the driver's first line, which names the failure but no password."""
    original = error.orig if error.orig is not None else error
    first = str(original).strip().splitlines()[:1]
    return f"{type(original).__name__}: {first[0] if first else ''}"
