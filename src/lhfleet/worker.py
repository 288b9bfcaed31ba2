"""One leased run, start to outcome: audit, store the reports, record, retry.

Every engine's worker calls ``RunExecutor.execute`` with a run it has
leased; the order (reports first, then the conditional write) is what makes
a recorded success always have its report.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lhfleet import codes
from lhfleet.auditor import Auditor, AuditRequest, AuditResult
from lhfleet.errors import ChromeLaunchError
from lhfleet.lhr import ReportFacts, read_facts, redact, strip_screenshots
from lhfleet.models import JobSecrets, JobSettings, Run
from lhfleet.ports import Failure, JobStore, ReportStore, Settlement

logger = logging.getLogger(__name__)

BACKOFF_BASE = 2.0
BACKOFF_CAP = 60.0
LAUNCH_FAILURE_LIMIT = 2


def backoff(attempt: int) -> float:
    """Return the wait in seconds before attempt ``attempt + 1``, with jitter."""
    delay: float = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
    return delay * random.uniform(0.8, 1.2)


@dataclass
class RunExecutor:
    store: JobStore
    reports: ReportStore
    auditor: Auditor
    owner: str
    on_complete: Callable[[str], None] | None = None
    clock: Callable[[], float] = time.time
    launch_failures: int = 0
    conditions: Callable[[], dict[str, Any]] | None = None
    """Returns what the slot ran under (its concurrency), kept with each run."""
    observe: Callable[[ReportFacts], None] | None = None
    """Called with the facts of each audit that gave a result."""
    """Chrome launch failures in a row in this slot."""

    def execute(
        self,
        run: Run,
        settings: JobSettings,
        secrets: JobSecrets,
        cancel: threading.Event | None = None,
    ) -> Settlement | None:
        """Audit a leased run and record its outcome; None when it was interrupted.

        Raises ChromeLaunchError, after giving the run back, when Chrome fails
        to start twice in a row in this slot: every other run would fail the
        same way.
        """
        logger.info("run %s attempt %d: auditing %s", run.id, run.attempts, run.url)
        request = AuditRequest(
            run.url, settings, secrets.extra_headers, secrets.login_script
        )
        label = f"{run.id}.a{run.attempts}"
        result = self.auditor.audit(request, label, self.owner, cancel)
        if result.error_code == codes.RUNNER_INTERRUPTED:
            self.store.release(run.id, self.owner)
            logger.info("run %s interrupted; returned to the queue", run.id)
            return None
        if result.error_code != codes.CHROME_LAUNCH_FAILED:
            self.launch_failures = 0
        elif self.launch_failures + 1 < LAUNCH_FAILURE_LIMIT:
            # One Chrome can die while starting (memory pressure, a killed
            # process); a fresh one is tried before the job is stopped.
            self.launch_failures += 1
        else:
            self.store.release(run.id, self.owner)
            raise ChromeLaunchError(
                f"Chrome failed to launch for run {run.id}: {result.error_message} "
                "Run `lhfleet doctor` to check Chromium, fix it, then "
                f"`lhfleet resume {run.job_id}`."
            )
        settlement = self._record(run, settings, result)
        if settlement.completed_job and self.on_complete is not None:
            self.on_complete(run.job_id)
        return settlement

    def _record(
        self, run: Run, settings: JobSettings, result: AuditResult
    ) -> Settlement:
        refs: tuple[str | None, str | None] = (None, None)
        facts = None
        if result.lhr is not None:
            facts = read_facts(result.lhr)
            facts.warnings.extend(result.log_warnings)
            facts.conditions.update(result.conditions)
            facts.conditions["load_average"] = round(os.getloadavg()[0], 2)
            if self.conditions is not None:
                facts.conditions.update(self.conditions())
            if self.observe is not None:
                self.observe(facts)
            started = time.monotonic()
            refs = self._store_reports(run, settings, result)
            # The reports are stored before the outcome is recorded, so their
            # time (HTML rendering, compression, writes) can go with it.
            timings = facts.conditions.setdefault("timings", {})
            timings["store"] = round(time.monotonic() - started, 3)
        now = self.clock()
        if result.error_code is None and facts is not None and refs[0] and refs[1]:
            settlement = self.store.record_success(
                run.id, self.owner, facts, refs[0], refs[1], now
            )
            self._log(run, settlement, "succeeded", result)
            return settlement
        code = result.error_code or codes.NO_RESULT
        message = result.error_message or "Lighthouse gave no result."
        retry = run.attempts < settings.max_attempts and codes.is_transient(
            code, message
        )
        failure = Failure(
            code=code,
            message=message,
            stderr_tail=result.stderr_tail,
            retry_at=now + backoff(run.attempts) if retry else None,
            facts=facts,
            report_json=refs[0],
            report_html=refs[1],
        )
        settlement = self.store.record_failure(run.id, self.owner, failure, now)
        self._log(run, settlement, f"failed with {code}", result)
        return settlement

    def _store_reports(
        self, run: Run, settings: JobSettings, result: AuditResult
    ) -> tuple[str | None, str | None]:
        assert result.lhr is not None
        lhr = redact(result.lhr)
        body = json.dumps(lhr, separators=(",", ":")).encode("utf-8")
        try:
            html = self.auditor.render_html(body)
        except (OSError, RuntimeError) as error:
            logger.error("run %s: %s", run.id, error)
            result.error_code = result.error_code or codes.NO_RESULT
            result.error_message = result.error_message or str(error)
            return (None, None)
        if settings.strip_screenshots:
            body = json.dumps(strip_screenshots(lhr), separators=(",", ":")).encode()
        return self.reports.put_report(run.job_id, run.id, run.attempts, body, html)

    def _log(
        self, run: Run, settlement: Settlement, what: str, result: AuditResult
    ) -> None:
        if not settlement.recorded:
            logger.warning(
                "run %s %s, but its lease had passed to another worker; "
                "this outcome was not recorded",
                run.id,
                what,
            )
        elif settlement.settled:
            logger.info("run %s %s after %.1f s", run.id, what, result.duration)
            if settlement.added_run:
                logger.info(
                    "run %s: %s is still noisy; queued run %s",
                    run.id,
                    run.url,
                    settlement.added_run,
                )
        else:
            logger.warning(
                "run %s attempt %d %s; retrying: %s",
                run.id,
                run.attempts,
                what,
                result.error_message,
            )
