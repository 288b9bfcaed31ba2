"""Service functions that the CLI (and later the API) call: submit, drive, read."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lhfleet import codes
from lhfleet.aggregate import check_settings
from lhfleet.auditor import Auditor, sweep_scratch
from lhfleet.dispatch.controller import auto_maximum
from lhfleet.dispatch.local import Concurrency, LocalDispatcher
from lhfleet.errors import InvalidSettingError, LhfleetError
from lhfleet.estimate import record_job
from lhfleet.guard import GuardPolicy, check_chrome_flags
from lhfleet.guard_auditor import GuardedAuditor
from lhfleet.hooks import (
    MAX_PAYLOAD_URLS,
    Deliverer,
    HookCall,
    HookSpec,
    check_hooks,
    digest_payload,
)
from lhfleet.models import (
    CATEGORIES,
    EXTRA_CATEGORIES,
    PRESETS,
    Job,
    JobSecrets,
    JobSettings,
    JobState,
    Target,
)
from lhfleet.owners import is_gone
from lhfleet.ports import Failure, HookLedger, JobStore, ReportStore
from lhfleet.reports.local import LocalReportStore
from lhfleet.results import ResultsDigest, results_document, write_results_json
from lhfleet.runtime import Runtime, find_runtime
from lhfleet.store.hook_ledger import SqlHookLedger
from lhfleet.store.sql import SqlJobStore, sqlite_url

logger = logging.getLogger(__name__)

DEFAULT_DATA_DIR = ".lhfleet"
MAX_RUNS = 100
MIN_TIMEOUT = 10.0


def default_data_dir() -> Path:
    return Path(os.environ.get("LHFLEET_HOME") or DEFAULT_DATA_DIR)


@dataclass
class Workspace:
    """The embedded default: SQLite, a report folder and a scratch folder."""

    data_dir: Path
    store: JobStore
    reports: ReportStore
    scratch: Path
    ledger: HookLedger | None = None
    """Where the hooks of each job are recorded; beside an SQL store by default."""

    def __post_init__(self) -> None:
        # A store that wraps the SQL store (the cluster engine's patient one)
        # names it ``inner``; the ledger lives in the same database.
        sql_store = getattr(self.store, "inner", self.store)
        if self.ledger is None and isinstance(sql_store, SqlJobStore):
            self.ledger = SqlHookLedger.beside(sql_store)

    @classmethod
    def open(cls, data_dir: Path) -> Workspace:
        data_dir = data_dir.expanduser().resolve()
        try:
            (data_dir / "scratch").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InvalidSettingError(
                f"Cannot create the data directory {data_dir}: {error.strerror}. "
                "Pass a writable folder with --data-dir or LHFLEET_HOME."
            ) from error
        store = SqlJobStore(sqlite_url(data_dir / "lhfleet.db"))
        reports = LocalReportStore(data_dir / "reports")
        return cls(data_dir, store, reports, data_dir / "scratch")


def auto_concurrency() -> int:
    """Return a safe number of audits at once: one per two cores.

    Lighthouse's guidance is one audit per machine; with one per two cores
    the audits leave each other a core, which keeps TBT near its idle value.
    """
    return max(1, (os.cpu_count() or 1) // 2)


def describe_slots(concurrency: Concurrency) -> str:
    """Return how many audits run at once, in words, for progress messages."""
    if concurrency == "auto":
        return f"auto concurrency (up to {auto_maximum()} at a time)"
    return f"{concurrency} at a time"


def validate_settings(settings: JobSettings) -> None:
    """Raise InvalidSettingError naming the first setting out of range."""
    if not 1 <= settings.runs <= MAX_RUNS:
        raise InvalidSettingError(
            f"--runs is {settings.runs}; use a number from 1 to {MAX_RUNS}."
        )
    if settings.preset not in PRESETS:
        raise InvalidSettingError(
            f"--preset is {settings.preset!r}; use one of {', '.join(PRESETS)}."
        )
    known = CATEGORIES + EXTRA_CATEGORIES
    unknown = [category for category in settings.categories if category not in known]
    if unknown or not settings.categories:
        raise InvalidSettingError(
            f"--categories has {', '.join(unknown) or 'no category'}; "
            f"use a comma-separated list of {', '.join(known)}."
        )
    if settings.timeout < MIN_TIMEOUT:
        raise InvalidSettingError(
            f"--timeout is {settings.timeout:g} s; an audit needs at least "
            f"{MIN_TIMEOUT:g} s, and 120 s suits most pages."
        )
    if settings.retries < 0:
        raise InvalidSettingError(f"--retries is {settings.retries}; use 0 or more.")
    if settings.allowed_networks and not settings.guard:
        raise InvalidSettingError(
            "The settings allow networks through the guard but leave the guard "
            "off. Turn the guard on (--guard), or allow no networks."
        )
    if settings.guard:
        GuardPolicy.from_cidrs(settings.allowed_networks)
        check_chrome_flags(settings.chrome_flags)
    check_settings(settings, MAX_RUNS)


def submit(
    workspace: Workspace,
    targets: Iterable[Target | str],
    settings: JobSettings,
    secrets: JobSecrets,
    hooks: Sequence[HookSpec] = (),
) -> Job:
    """Validate the settings and store the job with its queued runs and hooks."""
    validate_settings(settings)
    check_hooks(hooks)
    if hooks and workspace.ledger is None:
        raise InvalidSettingError(
            "This job store cannot keep hooks. Use the SQL job store (SQLite or "
            "PostgreSQL), or submit the job without hooks."
        )
    job = workspace.store.create_job(settings, secrets, targets)
    if job.total == 0:
        raise InvalidSettingError("The URL list is empty. Give at least one URL.")
    if hooks and workspace.ledger is not None:
        specs = [hook.to_dict() for hook in hooks]
        workspace.ledger.add_hooks(job.id, specs, time.time())
    return job


def drive(
    workspace: Workspace,
    job_id: str,
    concurrency: Concurrency,
    stop: threading.Event,
    runtime: Runtime | None = None,
    auditor: Auditor | None = None,
) -> Job:
    """Run a job's unsettled runs here until all settle or ``stop`` is set.

    ``auditor`` replaces the default one, which audits on ``runtime`` and
    starts a guard proxy for the runs of a guarded job, stopped on return.
    """
    job = workspace.store.get_job(job_id)
    recover(workspace, job_id)
    if job.state is not JobState.COMPLETED:
        own = None
        if auditor is None:
            own = GuardedAuditor(Auditor(runtime or find_runtime(), workspace.scratch))
            auditor = own
        dispatcher = LocalDispatcher(
            workspace.store,
            workspace.reports,
            auditor,
            concurrency,
            on_complete=lambda done: complete(workspace, done),
            idle_benchmark=job.settings.host_benchmark_index,
        )
        logger.info("job %s: started (%d runs pending)", job_id, job.pending)
        try:
            dispatcher.dispatch(job, stop)
        finally:
            if own is not None:
                own.close()
    job = workspace.store.get_job(job_id)
    if (
        job.state is JobState.COMPLETED
        and not _summary_path(workspace, job_id).exists()
    ):
        complete(workspace, job_id)
    elif job.state is JobState.COMPLETED:
        deliver_owed_hooks(workspace, job_id)
    return job


def recover(workspace: Workspace, job_id: str) -> None:
    """Give back runs and remove work folders that an exited lhfleet left."""
    swept = sweep_scratch(workspace.scratch, is_gone)
    released = workspace.store.release_owners(job_id, is_gone)
    if swept or released:
        logger.info(
            "job %s: recovered %d runs and %d work folders of exited processes",
            job_id,
            released,
            swept,
        )


def complete(workspace: Workspace, job_id: str) -> None:
    """Write the results document of a job whose last run has settled."""
    job = workspace.store.get_job(job_id)
    try:
        record_job(
            workspace.data_dir, job.settings.preset, workspace.store.iter_runs(job_id)
        )
    except (LhfleetError, sa.exc.SQLAlchemyError) as error:
        logger.warning("job %s: the host profile was not updated: %s", job_id, error)
    # The document is written to a file one URL at a time and handed to the
    # report store from there, so a large job's results never sit in memory.
    with tempfile.NamedTemporaryFile(
        "w", dir=workspace.scratch, prefix=".results-", suffix=".json", delete=False
    ) as handle:
        written = Path(handle.name)
        try:
            digest = write_results_json(
                workspace.store, workspace.reports, job_id, handle, MAX_PAYLOAD_URLS
            )
        except BaseException:
            written.unlink(missing_ok=True)
            raise
    try:
        ref = workspace.reports.put_summary_file(job_id, written)
    finally:
        written.unlink(missing_ok=True)
    location = workspace.reports.locate(ref)
    logger.info("job %s: completed; results in %s", job_id, location)
    _fire_hooks(workspace, digest, location)


def _fire_hooks(workspace: Workspace, digest: ResultsDigest, location: str) -> None:
    """Deliver the hooks the job owes; a failure is logged and stays owed."""
    if workspace.ledger is None:
        return
    job = digest.job
    call = HookCall(job["id"], location, job["state"], digest_payload(digest, location))
    try:
        Deliverer(workspace.ledger).deliver_owed(call)
    except (LhfleetError, OSError, sa.exc.SQLAlchemyError) as error:
        logger.error(
            "job %s: delivering its hooks failed: %s. They stay owed; "
            "`lhfleet resume %s` delivers them.",
            job["id"],
            error,
            job["id"],
        )


def deliver_owed_hooks(workspace: Workspace, job_id: str) -> bool:
    """Deliver the hooks a completed job still owes; False when it owed none.

    The results document is written again first, as ``complete`` does, so
    the hooks see the same summary as when the job completed.
    """
    ledger = workspace.ledger
    if ledger is None:
        return False
    owed = [
        d for d in ledger.deliveries(job_id) if d.state in ("pending", "delivering")
    ]
    if not owed:
        return False
    logger.info("job %s: %d hook deliveries owed; delivering", job_id, len(owed))
    complete(workspace, job_id)
    return True


def cancel(workspace: Workspace, job_id: str) -> int:
    """Fail a job's queued runs as cancelled; return how many.

    Runs in flight are left to their workers; a driver that is stopped
    gives its runs back, and cancelling again fails those. The write that
    fails the last unsettled run completes the job, and its hooks fire.
    """
    failure = Failure(
        code=codes.JOB_CANCELLED,
        message="The job was cancelled before this run finished. Run it again "
        f"with `lhfleet retry {job_id}`.",
    )
    before = workspace.store.get_job(job_id).pending
    outcome = workspace.store.abandon(job_id, failure, time.time())
    if outcome.completed_job:
        complete(workspace, job_id)
    after = workspace.store.get_job(job_id).pending
    logger.info("job %s: cancelled %d unsettled runs", job_id, before - after)
    return before - after


def retry_failed(workspace: Workspace, job_id: str) -> int:
    """Queue the failed runs of a job again; return how many."""
    count = workspace.store.requeue_failed(job_id, time.time())
    logger.info("job %s: queued %d failed runs again", job_id, count)
    return count


def end_for_deadline(workspace: Workspace, job_id: str, limit: float) -> int:
    """Fail the job's unsettled runs because its time limit passed; return how many."""
    failure = Failure(
        code=codes.JOB_DEADLINE,
        message=f"The job's --max-duration of {limit:g} s passed before this run "
        f"finished. Run it again with `lhfleet retry {job_id}`.",
    )
    before = workspace.store.get_job(job_id).pending
    outcome = workspace.store.abandon(job_id, failure, time.time())
    if outcome.completed_job:
        complete(workspace, job_id)
    logger.warning(
        "job %s: time limit of %g s passed; %d runs failed", job_id, limit, before
    )
    return before


def prune(workspace: Workspace, older_than: float) -> list[str]:
    """Delete jobs created more than ``older_than`` seconds ago, with their reports."""
    removed = workspace.store.delete_jobs(time.time() - older_than)
    for job_id in removed:
        workspace.reports.delete_job(job_id)
    logger.info("pruned %d jobs older than %g s", len(removed), older_than)
    return removed


def _summary_path(workspace: Workspace, job_id: str) -> Path:
    return workspace.data_dir / "reports" / job_id / "results.json"


def results(workspace: Workspace, job_id: str) -> dict[str, Any]:
    return results_document(workspace.store, workspace.reports, job_id)
