"""The ports every engine fills: where jobs live, where reports go, who runs them.

The domain and the service layer talk to these base classes only; SQLite,
PostgreSQL, local folders, Celery and AWS are adapters beside them.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from lhfleet.lhr import ReportFacts
from lhfleet.models import Job, JobSecrets, JobSettings, Run, Target


@dataclass(frozen=True)
class Settlement:
    """What a conditional write of a run's outcome did."""

    recorded: bool
    """False when another writer had already settled or re-leased the run."""

    settled: bool
    """True when the run reached a terminal state (not re-queued for a retry)."""

    completed_job: bool
    """True for the one write that settled the job's last run."""

    added_run: str | None = None
    """The id of the run that this write queued for a URL still over its spread
    target (adaptive jobs only); added in the same transaction as the settle."""


@dataclass(frozen=True)
class Failure:
    """A failed attempt, as the worker reports it to the store."""

    code: str
    message: str
    stderr_tail: str = ""
    retry_at: float | None = None
    """When to try again (Unix time); None makes the failure terminal."""

    facts: ReportFacts | None = None
    """What the result said, when Lighthouse produced one despite the failure."""

    report_json: str | None = None
    report_html: str | None = None


class JobStore(abc.ABC):
    """Jobs and their runs, with conditional writes for every state change."""

    @abc.abstractmethod
    def create_job(
        self,
        settings: JobSettings,
        secrets: JobSecrets,
        targets: Iterable[Target | str],
    ) -> Job:
        """Store a job and one queued run per (target, run index), in batches.

        The targets are read once, as a stream, so a long list is never held
        in memory.
        """

    @abc.abstractmethod
    def get_job(self, job_id: str) -> Job:
        """Return a job; raise NotFoundError for an unknown id."""

    @abc.abstractmethod
    def list_jobs(self, limit: int = 50, offset: int = 0) -> list[Job]:
        """Return jobs, newest first."""

    @abc.abstractmethod
    def get_secrets(self, job_id: str) -> JobSecrets:
        """Return the values that runs need and results never show."""

    @abc.abstractmethod
    def iter_runs(self, job_id: str) -> Iterator[Run]:
        """Yield a job's runs ordered by URL, then run index."""

    @abc.abstractmethod
    def get_run(self, run_id: str) -> Run:
        """Return one run; raise NotFoundError for an unknown id."""

    @abc.abstractmethod
    def claim_next(
        self, job_id: str, owner: str, lease_seconds: float, now: float
    ) -> Run | None:
        """Lease the next due run of a job, or return None when none is due."""

    @abc.abstractmethod
    def claim(
        self, run_id: str, owner: str, lease_seconds: float, now: float
    ) -> Run | None:
        """Lease one run if it is due; None when it is settled or leased."""

    @abc.abstractmethod
    def record_success(
        self,
        run_id: str,
        owner: str,
        facts: ReportFacts,
        report_json: str,
        report_html: str,
        now: float,
    ) -> Settlement:
        """Settle a leased run as succeeded, if ``owner`` still holds its lease."""

    @abc.abstractmethod
    def record_failure(
        self, run_id: str, owner: str, failure: Failure, now: float
    ) -> Settlement:
        """Re-queue a leased run for a retry, or settle it as failed."""

    @abc.abstractmethod
    def release(self, run_id: str, owner: str) -> bool:
        """Return a leased run to the queue, undoing the attempt it was charged."""

    @abc.abstractmethod
    def release_owners(self, job_id: str, is_gone: Callable[[str], bool]) -> int:
        """Release the leases of owners that ``is_gone`` says are dead."""

    @abc.abstractmethod
    def abandon(self, job_id: str, failure: Failure, now: float) -> Settlement:
        """Settle every queued run of a job as failed, for a job out of time.

        Runs still leased are left to their workers.
        """

    @abc.abstractmethod
    def delete_jobs(self, created_before: float) -> list[str]:
        """Delete jobs created before a time, with their runs; return their ids."""

    @abc.abstractmethod
    def requeue_failed(self, job_id: str, now: float) -> int:
        """Queue a job's failed runs again with fresh attempts; return how many."""

    @abc.abstractmethod
    def next_due(self, job_id: str) -> float | None:
        """Return when the job's next queued run or expiring lease is due."""


class ReportStore(abc.ABC):
    """Full Lighthouse reports, written before a run's outcome is recorded."""

    @abc.abstractmethod
    def put_report(
        self,
        job_id: str,
        run_id: str,
        attempt: int,
        report_json: bytes,
        report_html: str,
    ) -> tuple[str, str]:
        """Store one attempt's reports; return references to the JSON and HTML.

        Each attempt gets its own names, so a worker whose lease lapsed can
        never overwrite the report of the attempt that was recorded.
        """

    @abc.abstractmethod
    def put_summary(self, job_id: str, body: bytes) -> str:
        """Store a job's results document (JSON); return its reference."""

    @abc.abstractmethod
    def delete_job(self, job_id: str) -> None:
        """Delete every report and the results document of a job."""

    @abc.abstractmethod
    def read_json(self, ref: str) -> bytes:
        """Return the uncompressed JSON report behind a reference."""

    @abc.abstractmethod
    def locate(self, ref: str) -> str:
        """Return where a user finds a stored report (a path or a URL)."""


class Dispatcher(abc.ABC):
    """Gets every due run of a job to a worker."""

    @abc.abstractmethod
    def dispatch(self, job: Job, stop: threading.Event) -> None:
        """Hand out the job's runs until each has settled or ``stop`` is set.

        An engine whose workers run elsewhere returns once the runs are
        published; the local engine returns when it has run them.
        """
