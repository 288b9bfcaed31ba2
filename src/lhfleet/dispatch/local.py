"""The local engine's dispatcher: worker threads on this host, one audit each.

Each slot is a thread that leases a run and supervises its slot's
Lighthouse runner; Lighthouse runs in its own process, so the threads only
wait. A ``ConcurrencyController`` decides how many slots may take runs at
a time (fixed, or adjusted as runs finish with ``auto``). The first fatal
error (Chrome will not start, the disk is full) stops every slot, and the
leased runs go back to the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from lhfleet.auditor import INTERRUPT_GRACE, Auditor
from lhfleet.dispatch.controller import ConcurrencyController, auto_maximum
from lhfleet.errors import LhfleetError
from lhfleet.models import Job, JobSecrets, JobState
from lhfleet.node_runner import MAX_WINDOW_EXTENSION
from lhfleet.owners import current_owner
from lhfleet.ports import Dispatcher, JobStore, ReportStore
from lhfleet.window import shared_window
from lhfleet.worker import RunExecutor

logger = logging.getLogger(__name__)

LEASE_MARGIN = 120.0
WINDOW_MARGIN = MAX_WINDOW_EXTENSION
IDLE_WAIT_MIN = 0.2
IDLE_WAIT_MAX = 2.0

Concurrency = int | Literal["auto"]
"""Worker slots: a fixed number, or auto (adjusted by ConcurrencyController)."""


class LocalDispatcher(Dispatcher):
    """Runs a job's audits here, ``concurrency`` at a time."""

    def __init__(
        self,
        store: JobStore,
        reports: ReportStore,
        auditor: Auditor,
        concurrency: Concurrency,
        on_complete: Callable[[str], None] | None = None,
        idle_benchmark: float | None = None,
    ) -> None:
        self.store = store
        self.reports = reports
        self.auditor = auditor
        window = getattr(auditor, "window", None) or shared_window()
        if concurrency == "auto":
            self.controller = ConcurrencyController(
                auto_maximum(), window, idle_benchmark=idle_benchmark
            )
        else:
            self.controller = ConcurrencyController.fixed(concurrency, window)
        self.concurrency = self.controller.maximum
        self.on_complete = on_complete
        self.errors: list[BaseException] = []

    def dispatch(self, job: Job, stop: threading.Event) -> None:
        """Run the job's due runs until all settle; raise the first fatal error."""
        secrets = self.store.get_secrets(job.id)
        slots = [
            threading.Thread(
                target=self._slot,
                args=(number, job, secrets, stop),
                name=f"lhfleet-slot-{number}",
                daemon=True,
            )
            for number in range(self.concurrency)
        ]
        logger.info("job %s: running with %d worker slots", job.id, len(slots))
        for slot in slots:
            slot.start()
        for slot in slots:
            while slot.is_alive():
                slot.join(timeout=0.5)
        if self.errors:
            error = self.errors[0]
            raise error

    def _slot(
        self, number: int, job: Job, secrets: JobSecrets, stop: threading.Event
    ) -> None:
        owner = current_owner(number)
        executor = RunExecutor(
            self.store,
            self.reports,
            self.auditor,
            owner,
            self.on_complete,
            conditions=self._conditions,
            observe=lambda facts: self.controller.observe(facts.benchmark_index),
        )
        lease = job.settings.timeout + INTERRUPT_GRACE + LEASE_MARGIN + WINDOW_MARGIN
        while not stop.is_set():
            if not self.controller.admits(number):
                if self.store.get_job(job.id).state is JobState.COMPLETED:
                    return
                stop.wait(IDLE_WAIT_MAX)
                continue
            now = time.time()
            run = self.store.claim_next(job.id, owner, lease, now)
            if run is None:
                if self.store.get_job(job.id).state is JobState.COMPLETED:
                    return
                stop.wait(self._idle_wait(job.id, now))
                continue
            try:
                executor.execute(run, job.settings, secrets, stop)
            except LhfleetError as error:
                self._fail(error, run.id, owner, stop)
                return
            except Exception as error:
                logger.exception(
                    "job %s: slot %d crashed on run %s", job.id, number, run.id
                )
                self._fail(error, run.id, owner, stop)
                return

    def _fail(
        self, error: BaseException, run_id: str, owner: str, stop: threading.Event
    ) -> None:
        self.store.release(run_id, owner)
        self.errors.append(error)
        stop.set()

    def _conditions(self) -> dict[str, Any]:
        return {
            "concurrency": self.controller.limit,
            "concurrency_mode": "auto" if self.controller.adaptive else "fixed",
        }

    def _idle_wait(self, job_id: str, now: float) -> float:
        due = self.store.next_due(job_id)
        if due is None:
            return IDLE_WAIT_MAX
        return min(IDLE_WAIT_MAX, max(IDLE_WAIT_MIN, due - now))
