"""The submitting side of the cluster engine: publish a job's runs, then watch it.

``lhfleet run --engine celery`` stores the job like the local engine does
and publishes one task per run. Then it follows the job by reading the job
store while the workers audit the runs. Publishing again is always safe,
because a run's second task finds the run leased or settled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from lhfleet import service
from lhfleet.dispatch.celery.app import EngineApp
from lhfleet.dispatch.celery.sweeper import Sweeper
from lhfleet.errors import InvalidSettingError, StoreError
from lhfleet.models import Job, JobState
from lhfleet.ports import Dispatcher, JobStore, ReportStore
from lhfleet.store.sql import SqlJobStore

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
SUMMARY_GRACE = 30.0


class CeleryDispatcher(Dispatcher):
    """Publishes a task for every unsettled run of a job, and returns."""

    def __init__(self, engine: EngineApp, store: JobStore) -> None:
        self.engine = engine
        self.store = store
        self.published = 0

    def dispatch(self, job: Job, stop: threading.Event) -> None:
        """Publish the job's queued and leased runs; settled runs are skipped."""
        pending = (
            run.id for run in self.store.iter_runs(job.id) if not run.state.settled
        )
        started = time.monotonic()
        self.published = self.engine.publish_runs(pending, stop.is_set, job.id)
        logger.info(
            "job %s: published %d runs to queue %s in %.1f s",
            job.id,
            self.published,
            self.engine.config.queue,
            time.monotonic() - started,
        )


def summary_written(reports: ReportStore, job_id: str) -> bool:
    """Tell whether the job's results document is in the report store."""
    has_summary: Callable[[str], bool] | None = getattr(reports, "has_summary", None)
    if has_summary is not None:
        return has_summary(job_id)
    return Path(reports.locate(f"{job_id}/results.json")).is_file()


def make_sweeper(engine: EngineApp, store: JobStore) -> Sweeper:
    """Return a sweeper that publishes over the engine's broker."""
    inner = getattr(store, "inner", store)
    if not isinstance(inner, SqlJobStore):
        raise InvalidSettingError(
            "The cluster engine needs the SQL job store (--store postgresql://... "
            "or sqlite:///...)."
        )
    return Sweeper(
        inner,
        lambda run_ids: engine.publish_runs(run_ids, lambda: False),
        engine.config,
    )


def submit(
    workspace: service.Workspace, engine: EngineApp, job: Job, stop: threading.Event
) -> int:
    """Publish the runs of a stored job; return how many were published."""
    engine.config.check_settings(job.settings)
    dispatcher = CeleryDispatcher(engine, workspace.store)
    dispatcher.dispatch(job, stop)
    return dispatcher.published


def follow(
    workspace: service.Workspace,
    job_id: str,
    stop: threading.Event,
    sweeper: Sweeper | None = None,
    poll: float = POLL_SECONDS,
) -> Job:
    """Wait until the job completes and its results are written, or ``stop``.

    Sweeps the job now and then, so that runs whose task was lost are
    published again. If no worker writes the results within a grace period
    after the last run settles, writes them here.
    """
    last_sweep = time.monotonic()
    completed_at: float | None = None
    while not stop.wait(poll):
        job = _read_job(workspace, job_id)
        if job is None:
            continue
        if job.state is JobState.COMPLETED:
            completed_at = completed_at or time.monotonic()
            if _results_ready(workspace, job_id, completed_at):
                return job
        elif sweeper is not None and _due(last_sweep, sweeper):
            last_sweep = time.monotonic()
            _sweep(sweeper, job_id)
    return workspace.store.get_job(job_id)


def _read_job(workspace: service.Workspace, job_id: str) -> Job | None:
    try:
        return workspace.store.get_job(job_id)
    except StoreError as error:
        logger.warning("job %s: reading its progress failed: %s", job_id, error)
        return None


def _results_ready(
    workspace: service.Workspace, job_id: str, completed_at: float
) -> bool:
    if summary_written(workspace.reports, job_id):
        return True
    if time.monotonic() - completed_at < SUMMARY_GRACE:
        return False
    logger.warning(
        "job %s: no worker wrote its results within %g s; writing them here",
        job_id,
        SUMMARY_GRACE,
    )
    service.complete(workspace, job_id)
    return True


def _due(last_sweep: float, sweeper: Sweeper) -> bool:
    interval = sweeper.config.sweep_interval
    return interval > 0 and time.monotonic() - last_sweep >= interval


def _sweep(sweeper: Sweeper, job_id: str) -> None:
    try:
        sweeper.sweep(job_id)
    except (StoreError, sa.exc.SQLAlchemyError) as error:
        logger.warning("job %s: sweep failed: %s", job_id, error)
