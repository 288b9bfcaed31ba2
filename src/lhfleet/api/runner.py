"""The server's job runner: drives submitted jobs on the local engine, in threads.

Jobs wait in a queue in order of submission. Each of ``parallel_jobs``
driver threads takes one and calls ``service.drive`` on it, which runs
its audits in worker slots, one Lighthouse process each. Nothing here runs
on the server's event loop. On start the runner queues the server's
unfinished jobs again and delivers the hooks that completed jobs still owe.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from lhfleet import service
from lhfleet.auditor import Auditor
from lhfleet.errors import LhfleetError
from lhfleet.ports import TokenStore

logger = logging.getLogger(__name__)

QUEUE_WAIT = 0.5
RESUME_PAGE = 500


@dataclass(frozen=True)
class DriverState:
    """The runner's state for one job: queued, running, done, or stopped on an error."""

    state: str
    error: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"state": self.state, "error": self.error}


class JobRunner:
    """Drives jobs in background threads; safe to call from any thread."""

    def __init__(
        self,
        workspace: service.Workspace,
        make_auditor: Callable[[], Auditor],
        concurrency: int,
        parallel_jobs: int = 1,
    ) -> None:
        self.workspace = workspace
        self.make_auditor = make_auditor
        self.concurrency = concurrency
        self.parallel_jobs = parallel_jobs
        self._queue: queue.Queue[str] = queue.Queue()
        self._lock = threading.Lock()
        self._states: dict[str, DriverState] = {}
        self._stops: dict[str, threading.Event] = {}
        self._cancelled: set[str] = set()
        self._shutdown = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start the driver threads."""
        for number in range(self.parallel_jobs):
            thread = threading.Thread(
                target=self._loop, name=f"lhfleet-driver-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        logger.info(
            "job runner started: %d jobs at once, %d audits per job",
            self.parallel_jobs,
            self.concurrency,
        )

    def stop(self, timeout: float = 60.0) -> None:
        """Stop every driver; runs in flight go back to the queue for the next start."""
        self._shutdown.set()
        with self._lock:
            stops = list(self._stops.values())
        for stop in stops:
            stop.set()
        for thread in self._threads:
            thread.join(timeout)
        logger.info("job runner stopped")

    def submit(self, job_id: str) -> None:
        """Queue a job to be driven, unless it is queued or driven already."""
        with self._lock:
            current = self._states.get(job_id)
            if current is not None and current.state in ("queued", "running"):
                return
            self._states[job_id] = DriverState("queued")
        self._queue.put(job_id)
        logger.info("job %s: queued for the runner", job_id)

    def state_of(self, job_id: str) -> DriverState | None:
        with self._lock:
            return self._states.get(job_id)

    def active(self) -> int:
        """Return how many jobs are queued or driven."""
        with self._lock:
            return sum(s.state in ("queued", "running") for s in self._states.values())

    def cancel(self, job_id: str) -> int:
        """Cancel a job in the background; return how many runs were unsettled.

        Its driver stops and its unsettled runs fail as cancelled. Completing
        the job fires its hooks, which may take a while, so this returns first.
        """
        with self._lock:
            self._cancelled.add(job_id)
            stop = self._stops.get(job_id)
        pending = self.workspace.store.get_job(job_id).pending
        if stop is not None:
            stop.set()
        threading.Thread(
            target=self._cancel_quietly, args=(job_id,), name="lhfleet-cancel"
        ).start()
        logger.info("job %s: cancelling %d unsettled runs", job_id, pending)
        return pending

    def _cancel_quietly(self, job_id: str) -> None:
        try:
            service.cancel(self.workspace, job_id)
        except LhfleetError as error:
            logger.error("job %s: cancelling failed: %s", job_id, error)

    def retry(self, job_id: str) -> int:
        """Queue a job's failed runs again and drive it; return how many."""
        with self._lock:
            self._cancelled.discard(job_id)
        count = service.retry_failed(self.workspace, job_id)
        if count:
            self.submit(job_id)
        return count

    def resume_all(self, tokens: TokenStore) -> int:
        """Queue the server's unfinished jobs, deliver owed hooks; return the jobs."""
        running: list[str] = []
        while page := tokens.owned_jobs(
            None, RESUME_PAGE, len(running), running_only=True
        ):
            running += page
        for job_id in reversed(running):
            self.submit(job_id)
        owing = self.workspace.ledger.jobs_owing() if self.workspace.ledger else []
        if owing:
            threading.Thread(
                target=self._deliver_owed, args=(owing,), name="lhfleet-hooks"
            ).start()
        logger.info(
            "resumed %d unfinished jobs; %d completed jobs owe hooks",
            len(running),
            len(owing),
        )
        return len(running)

    def _deliver_owed(self, job_ids: list[str]) -> None:
        for job_id in job_ids:
            try:
                service.deliver_owed_hooks(self.workspace, job_id)
            except LhfleetError as error:
                logger.error("job %s: delivering owed hooks failed: %s", job_id, error)

    def _loop(self) -> None:
        while not self._shutdown.is_set():
            try:
                job_id = self._queue.get(timeout=QUEUE_WAIT)
            except queue.Empty:
                continue
            self._drive(job_id)

    def _drive(self, job_id: str) -> None:
        # NOTE: drivers share the server's process, so parsing a Lighthouse
        # result holds the interpreter lock while requests wait; under load
        # this shows in the status p99 (BENCHMARKS.md).
        stop = threading.Event()
        with self._lock:
            self._stops[job_id] = stop
            self._states[job_id] = DriverState("running")
            cancelled = job_id in self._cancelled
        state = DriverState("done")
        try:
            if not cancelled:
                service.drive(
                    self.workspace,
                    job_id,
                    self.concurrency,
                    stop,
                    auditor=self.make_auditor(),
                )
        except LhfleetError as error:
            logger.error("job %s: the runner stopped it: %s", job_id, error)
            state = DriverState("stopped", str(error))
        except Exception as error:
            logger.exception("job %s: the runner crashed", job_id)
            state = DriverState("stopped", f"{type(error).__name__}: {error}")
        finally:
            self._finish(job_id, state)

    def _finish(self, job_id: str, state: DriverState) -> None:
        with self._lock:
            self._stops.pop(job_id, None)
            cancelled = job_id in self._cancelled
        if cancelled:
            # Runs that the stopped slots gave back are queued again: fail them.
            self._cancel_quietly(job_id)
        elif self._shutdown.is_set() and state.state == "done":
            state = DriverState("stopped", "the server stopped; it resumes on restart")
        with self._lock:
            self._states[job_id] = state
        logger.info("job %s: runner finished (%s)", job_id, state.state)
