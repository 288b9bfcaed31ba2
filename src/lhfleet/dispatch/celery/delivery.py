"""What one delivery of a run's task does, whichever worker gets it, however often.

The task carries only the run id. A delivery leases the run with the job
store's conditional claim. A run that is settled, leased by a live worker
or waiting for its retry time cannot be leased, so a duplicate delivery
either ends at once or is published again, due when the lease or the wait
ends.
This module knows nothing of Celery: it returns an ``Outcome`` that the
task turns into an acknowledgement or a delayed retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lhfleet.auditor import Auditor
from lhfleet.dispatch.celery.config import ClusterConfig
from lhfleet.dispatch.celery.durable import DurableJobStore, LeaseView
from lhfleet.errors import ChromeLaunchError, NotFoundError, StoreError
from lhfleet.models import JobSecrets, JobSettings, Run, RunState
from lhfleet.owners import is_gone
from lhfleet.ports import ReportStore
from lhfleet.worker import RunExecutor

logger = logging.getLogger(__name__)

SETTLED = "settled"
REQUEUED = "requeued"
DUPLICATE = "duplicate"
WAITING = "waiting"
RELEASED = "released"
MISSING = "missing"

CHROME_RETRY = 60.0
STORE_RETRY = 30.0
MIN_WAIT = 0.5
LEASE_SLACK = 1.0
JOB_CACHE = 64


@dataclass(frozen=True)
class Outcome:
    """The action a delivery took, and the seconds until its task runs again."""

    action: str
    retry_in: float | None = None


def job_of(run_id: str) -> str:
    """Return the job id inside a run id (``JOB-URLINDEX-RUNINDEX``)."""
    return run_id.rsplit("-", 2)[0]


@dataclass
class Deliverer:
    """Leases, audits and records the run that one task delivery names."""

    store: DurableJobStore
    reports: ReportStore
    auditor: Auditor
    config: ClusterConfig
    owner: Callable[[], str]
    on_complete: Callable[[str], None]
    clock: Callable[[], float] = time.time
    _jobs: dict[str, tuple[JobSettings, JobSecrets]] = field(default_factory=dict)
    _executors: dict[str, RunExecutor] = field(default_factory=dict)

    def deliver(self, run_id: str) -> Outcome:
        """Lease the run and audit it, or return why not and when to try again."""
        try:
            settings, secrets = self._job(job_of(run_id))
        except NotFoundError:
            logger.warning("run %s: its job no longer exists; task dropped", run_id)
            return Outcome(MISSING)
        owner = self.owner()
        lease = self.config.lease_seconds(settings)
        run = self.store.claim(run_id, owner, lease, self.clock())
        if run is None:
            run = self._take_over(run_id, owner, lease)
        if run is None:
            return self._not_leased(run_id)
        return self._execute(run, owner, settings, secrets)

    def _job(self, job_id: str) -> tuple[JobSettings, JobSecrets]:
        if job_id not in self._jobs:
            if len(self._jobs) >= JOB_CACHE:
                self._jobs.clear()
            settings = self.store.get_job(job_id).settings
            self._jobs[job_id] = (settings, self.store.get_secrets(job_id))
        return self._jobs[job_id]

    def _take_over(self, run_id: str, owner: str, lease: float) -> Run | None:
        """Lease a run whose holder exited on this host, or whose lease is ours.

        A lease of ours comes from an earlier delivery in this process that
        crashed part way. Taking it back loses nothing.
        """
        view = self.store.lease(run_id)
        if view is None or view.state is not RunState.RUNNING or not view.owner:
            return None
        if view.owner != owner and not is_gone(view.owner):
            return None
        if not self.store.release(run_id, view.owner):
            return None
        logger.info(
            "run %s: took back the lease of %s, which ended", run_id, view.owner
        )
        return self.store.claim(run_id, owner, lease, self.clock())

    def _not_leased(self, run_id: str) -> Outcome:
        view = self.store.lease(run_id)
        if view is None:
            logger.warning("run %s no longer exists; task dropped", run_id)
            return Outcome(MISSING)
        if view.state.settled:
            logger.info(
                "run %s is already %s; duplicate delivery ignored", run_id, view.state
            )
            return Outcome(DUPLICATE)
        wait = self._wait(view)
        logger.info(
            "run %s is %s (lease of %s); trying again in %.1f s",
            run_id,
            view.state,
            view.owner or "nobody",
            wait,
        )
        return Outcome(WAITING, retry_in=wait)

    def _wait(self, view: LeaseView) -> float:
        now = self.clock()
        if view.state is RunState.QUEUED:
            until = view.not_before
        else:
            until = (view.expires or now) + LEASE_SLACK
        return max(MIN_WAIT, until - now)

    def _execute(
        self, run: Run, owner: str, settings: JobSettings, secrets: JobSecrets
    ) -> Outcome:
        executor = self._executor(owner)
        try:
            settlement = executor.execute(run, settings, secrets)
        except ChromeLaunchError as error:
            logger.error("run %s: %s", run.id, error)
            return Outcome(RELEASED, retry_in=CHROME_RETRY)
        except StoreError as error:
            logger.error("run %s: %s", run.id, error)
            self._release_quietly(run.id, owner)
            return Outcome(RELEASED, retry_in=STORE_RETRY)
        if settlement is None:
            return Outcome(RELEASED, retry_in=MIN_WAIT)
        if not settlement.recorded:
            return Outcome(DUPLICATE)
        if not settlement.settled:
            view = self.store.lease(run.id)
            wait = self._wait(view) if view is not None else MIN_WAIT
            return Outcome(REQUEUED, retry_in=wait)
        return Outcome(SETTLED)

    def _executor(self, owner: str) -> RunExecutor:
        """Return this slot's executor, which counts Chrome launch failures in a row."""
        if owner not in self._executors:
            self._executors[owner] = RunExecutor(
                self.store,
                self.reports,
                self.auditor,
                owner,
                self.on_complete,
                self.clock,
            )
        return self._executors[owner]

    def _release_quietly(self, run_id: str, owner: str) -> None:
        try:
            self.store.release(run_id, owner)
        except StoreError as error:
            logger.warning(
                "run %s: could not give back its lease (%s); it ends when it expires",
                run_id,
                error,
            )
