"""The ports every engine fills: where jobs live, where reports go, who runs them.

The domain and the service layer talk to these base classes only; SQLite,
PostgreSQL, local folders, Celery and AWS are adapters beside them.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhfleet.lhr import ReportFacts
from lhfleet.models import Job, JobSecrets, JobSettings, Run, Target


@dataclass(frozen=True)
class Settlement:
    """The effect of a conditional write of a run's outcome."""

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
    """The facts of the result, when Lighthouse produced one despite the failure."""

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
        """Release the leases of owners for which ``is_gone`` returns True."""

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

    def put_summary_file(self, job_id: str, path: Path) -> str:
        """Store the results document written to ``path`` and return its ref.

        The file is the caller's to remove. Stores that can stream a file
        override this; the default reads it whole.
        """
        return self.put_summary(job_id, path.read_bytes())

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


@dataclass(frozen=True)
class Quota:
    """Limits an admin sets on one API token; None is no limit."""

    max_running_jobs: int | None = None
    max_runs_per_day: int | None = None
    """Runs submitted per UTC day, counted from each job's total at submission."""


@dataclass(frozen=True)
class ApiToken:
    """A bearer token of the HTTP API, as the token store keeps it (hashed)."""

    id: str
    name: str
    admin: bool
    created_at: float
    revoked_at: float | None
    quota: Quota

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class TokenStore(abc.ABC):
    """API tokens, the jobs each one submitted, and their quotas."""

    @abc.abstractmethod
    def create_token(
        self, name: str, secret_hash: str, admin: bool, quota: Quota, now: float
    ) -> ApiToken:
        """Store a new token; raise InvalidSettingError when the name is taken."""

    @abc.abstractmethod
    def find_by_hash(self, secret_hash: str) -> ApiToken | None:
        """Return the token with this secret hash, revoked or not, or None."""

    @abc.abstractmethod
    def get_token(self, name: str) -> ApiToken:
        """Return a token by name; raise NotFoundError for an unknown name."""

    @abc.abstractmethod
    def list_tokens(self) -> list[ApiToken]:
        """Return every token, oldest first."""

    @abc.abstractmethod
    def revoke(self, name: str, now: float) -> ApiToken:
        """Mark a token revoked; revoking twice keeps the first time."""

    @abc.abstractmethod
    def set_quota(self, name: str, quota: Quota) -> ApiToken:
        """Replace a token's quota."""

    @abc.abstractmethod
    def reserve(self, token: ApiToken, runs: int, now: float) -> str:
        """Check the token's quotas for a job of ``runs`` runs and hold a place.

        Returns a reservation id for ``attach`` or ``cancel_reservation``.
        Raises QuotaExceeded when the job would go over a quota. Checks and
        the new place are one transaction, so two submissions at once cannot
        both take the last place.
        """

    @abc.abstractmethod
    def attach(self, reservation: str, job_id: str) -> None:
        """Record the stored job as the reservation's: its token owns it."""

    @abc.abstractmethod
    def cancel_reservation(self, reservation: str) -> None:
        """Give back a place whose job was never stored."""

    @abc.abstractmethod
    def owner_of(self, job_id: str) -> str | None:
        """Return the id of the token that submitted a job, or None."""

    @abc.abstractmethod
    def owned_jobs(
        self, token_id: str | None, limit: int, offset: int, running_only: bool = False
    ) -> list[str]:
        """Return ids of the jobs a token (None: any token) submitted, newest first."""

    @abc.abstractmethod
    def count_owned(self, token_id: str | None) -> int:
        """Return how many jobs a token (any token for None) submitted."""


@dataclass(frozen=True)
class HookDelivery:
    """One hook of one job and where its delivery stands."""

    id: str
    job_id: str
    index: int
    spec: dict[str, Any]
    """The hook as given, secrets included; never shown as it is."""

    state: str
    """``pending``, ``delivering`` (leased), ``delivered`` or ``failed``."""

    attempts: int
    last_error: str | None
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try at delivering a hook."""

    delivery_id: str
    number: int
    started_at: float
    duration: float
    ok: bool
    status_code: int | None = None
    """The webhook's HTTP status, or a command's exit status."""

    error: str | None = None


class HookLedger(abc.ABC):
    """The hooks each job owes on completion, with conditional writes.

    A delivery is leased before its hook fires and settled after, so a
    crash between a job's completion and its hooks leaves them owed, and
    the next ``deliver_owed`` fires them once.
    """

    @abc.abstractmethod
    def add_hooks(
        self, job_id: str, specs: Sequence[dict[str, Any]], now: float
    ) -> list[HookDelivery]:
        """Record the hooks a job owes, as pending deliveries."""

    @abc.abstractmethod
    def deliveries(self, job_id: str) -> list[HookDelivery]:
        """Return a job's deliveries in hook order."""

    @abc.abstractmethod
    def attempts(self, job_id: str) -> list[DeliveryAttempt]:
        """Return every delivery attempt of a job's hooks, oldest first."""

    @abc.abstractmethod
    def claim_next(
        self,
        job_id: str,
        owner: str,
        lease_seconds: float,
        now: float,
        is_gone: Callable[[str], bool],
    ) -> HookDelivery | None:
        """Lease the next owed delivery of a completed job, or return None.

        A delivery is owed when pending, or leased by an owner that
        ``is_gone`` says died or whose lease has expired.
        """

    @abc.abstractmethod
    def record_attempt(
        self, attempt: DeliveryAttempt, owner: str, lease_until: float
    ) -> bool:
        """Add an attempt to a delivery this owner holds and extend its lease.

        Returns False when the owner no longer holds the lease.
        """

    @abc.abstractmethod
    def finish(
        self,
        delivery_id: str,
        owner: str,
        delivered: bool,
        error: str | None,
        now: float,
    ) -> bool:
        """Settle a leased delivery as delivered or failed; False if not the holder."""

    @abc.abstractmethod
    def redeliver_failed(self, job_id: str) -> int:
        """Make a job's failed deliveries pending again; return how many."""

    @abc.abstractmethod
    def jobs_owing(self) -> list[str]:
        """Return the completed jobs that still owe a delivery."""
