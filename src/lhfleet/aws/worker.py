"""What the worker and dead-letter functions do with one run message.

The worker leases the run with a conditional write, audits it through the
shared RunExecutor (reports to S3 first, then the conditional outcome
write), and returns whether the message is done or should come back
later. The dead-letter consumer settles a run that no worker could
record as failed, with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from typing import Any

from lhfleet import codes
from lhfleet.auditor import Auditor
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.items import job_from
from lhfleet.aws.store import secrets_from
from lhfleet.errors import NotFoundError
from lhfleet.models import JobSettings, Run, RunState
from lhfleet.ports import Failure, Settlement
from lhfleet.worker import RunExecutor

logger = logging.getLogger(__name__)

LAMBDA_CHROME_FLAGS = ("--no-sandbox", "--disable-dev-shm-usage")
"""Chrome flags a Lambda sandbox needs: no user namespaces, a 64 MB /dev/shm."""

LEASE_MARGIN = 30.0
MIN_RETRY_DELAY = 1.0
MAX_VISIBILITY = 43_200
"""SQS's maximum visibility timeout, in seconds."""

WORKER_CRASHED = "WORKER_CRASHED"


@dataclass(frozen=True)
class RunMessage:
    job_id: str
    run_id: str


def parse_message(body: str) -> RunMessage | None:
    """Return the run a message names, or None (logged) for a malformed one."""
    try:
        data = json.loads(body)
        return RunMessage(str(data["job_id"]), str(data["run_id"]))
    except (ValueError, TypeError, KeyError):
        logger.error("dropping a malformed run message: %.200r", body)
        return None


def lambda_settings(settings: JobSettings) -> JobSettings:
    """Return the settings with the Chrome flags that Lambda's sandbox needs."""
    extra = [flag for flag in LAMBDA_CHROME_FLAGS if flag not in settings.chrome_flags]
    return dataclasses.replace(settings, chrome_flags=(*settings.chrome_flags, *extra))


class RunWorker:
    """Audits the run of one message at a time, with a lease from the job store."""

    def __init__(
        self,
        engine: AwsEngine,
        auditor: Auditor,
        extra_chrome_flags: bool = True,
    ) -> None:
        self.engine = engine
        self.auditor = auditor
        self.extra_chrome_flags = extra_chrome_flags

    def handle(self, body: str, owner: str, time_left: float) -> float | None:
        """Audit the message's run; None when the message is done, else seconds to wait.

        Raises when the worker itself fails (S3 down, Chrome will not start).
        The run then goes back to the queue with the error noted. Its message
        comes back after the visibility timeout, or reaches the dead-letter
        queue after the queue's maximum receives.
        """
        message = parse_message(body)
        if message is None:
            return None
        store = self.engine.store
        try:
            values = store.job_values(message.job_id)
        except NotFoundError:
            logger.warning(
                "run %s: job %s is gone; dropping", message.run_id, message.job_id
            )
            return None
        now = self.engine.clock()
        run = store.claim(message.run_id, owner, time_left + LEASE_MARGIN, now)
        if run is None:
            return self._not_claimed(message.run_id, now)
        settlement = self._execute(run, values, owner)
        if settlement is None:
            return MIN_RETRY_DELAY
        if settlement.recorded and not settlement.settled:
            due = store.run_values(run.id).get("not_before", now)
            return max(MIN_RETRY_DELAY, float(due) - now)
        return None

    def _execute(
        self, run: Run, values: dict[str, Any], owner: str
    ) -> Settlement | None:
        settings = job_from(values).settings
        if self.extra_chrome_flags:
            settings = lambda_settings(settings)
        store = self.engine.store
        executor = RunExecutor(
            store, self.engine.reports, self.auditor, owner, clock=self.engine.clock
        )
        try:
            return executor.execute(run, settings, secrets_from(values))
        except Exception as error:
            text = f"{type(error).__name__}: {error}"
            store.give_back(run.id, owner, WORKER_CRASHED, text[:2000])
            logger.exception("run %s: worker failed; returned to the queue", run.id)
            raise

    def _not_claimed(self, run_id: str, now: float) -> float | None:
        try:
            values = self.engine.store.run_values(run_id)
        except NotFoundError:
            logger.warning("run %s is gone; dropping its message", run_id)
            return None
        state = RunState(values["state"])
        if state.settled:
            logger.info("run %s already %s; duplicate message dropped", run_id, state)
            return None
        due = values.get("lease_expires" if state is RunState.RUNNING else "not_before")
        delay = max(MIN_RETRY_DELAY, float(due or now) - now + 1)
        logger.info("run %s is %s; message back in %.0f s", run_id, state, delay)
        return delay


def record_dead_letter(engine: AwsEngine, body: str) -> bool:
    """Settle a dead-lettered message's run as failed; True if this settled it."""
    message = parse_message(body)
    if message is None:
        return False
    try:
        values = engine.store.run_values(message.run_id)
    except NotFoundError:
        logger.warning("dead letter for unknown run %s dropped", message.run_id)
        return False
    if RunState(values["state"]).settled:
        logger.info("dead letter for run %s, already settled", message.run_id)
        return False
    failure = Failure(code=codes.DEAD_LETTERED, message=_dead_letter_reason(values))
    settlement = engine.store.fail_unsettled(message.run_id, failure, engine.clock())
    if settlement.recorded:
        logger.warning("run %s failed: %s", message.run_id, failure.message)
    return settlement.recorded


def _dead_letter_reason(values: dict[str, Any]) -> str:
    last = values.get("error_code")
    if last:
        detail = f"The last error was {last}: {values.get('error_message')}"
    else:
        detail = "No worker recorded an error; it may have run out of time or memory."
    attempts = int(values.get("attempts", 0))
    return (
        f"No worker recorded an outcome for this run in {attempts} attempts before "
        f"its message reached the dead-letter queue. {detail} Check the worker "
        "function's logs."
    )


def visible_after(delay: float) -> int:
    """Return a visibility timeout for a delay, within what SQS accepts."""
    return int(min(MAX_VISIBILITY, max(0.0, delay)))
