"""An audit stand-in for testing the control plane: a stored report, no Lighthouse.

Tests and benchmarks of the cluster engine measure queues, leases and
conditional writes; Lighthouse would add a minute of CPU per run and noise.
``lhfleet worker --stand-in-report FILE`` makes a worker use this class: it
waits ``delay`` seconds, then returns the stored report with the run's URL
written in. It is a fake: the worker logs a warning when it starts, and every report
it returns carries a run warning that marks it.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from lhfleet import codes
from lhfleet.auditor import Auditor, AuditRequest, AuditResult
from lhfleet.errors import InvalidSettingError

logger = logging.getLogger(__name__)

STAND_IN_WARNING = "This report comes from lhfleet's audit stand-in, not Lighthouse."


def minimal_report() -> dict[str, Any]:
    """Return the smallest result that lhfleet reads as a valid run."""
    return {
        "lighthouseVersion": "stand-in",
        "requestedUrl": "",
        "finalDisplayedUrl": "",
        "runWarnings": [],
        "environment": {"benchmarkIndex": 2000},
        "categories": {"performance": {"id": "performance", "score": 0.99}},
        "audits": {
            "first-contentful-paint": {"numericValue": 800.0},
            "largest-contentful-paint": {"numericValue": 1200.0},
            "total-blocking-time": {"numericValue": 0.0},
            "cumulative-layout-shift": {"numericValue": 0.0},
            "speed-index": {"numericValue": 900.0},
            "interactive": {"numericValue": 1200.0},
        },
        "configSettings": {},
    }


def load_report(path: Path | None) -> dict[str, Any]:
    """Read a stored Lighthouse result (JSON), or build the minimal one."""
    if path is None:
        return minimal_report()
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise InvalidSettingError(
            f"--stand-in-report {path} is not a readable Lighthouse JSON result "
            f"({error}). Save one with `lighthouse URL --output json`."
        ) from error
    if not isinstance(report, dict) or "audits" not in report:
        raise InvalidSettingError(
            f"--stand-in-report {path} has no 'audits'; give a Lighthouse result."
        )
    return report


class StandInAuditor(Auditor):
    """A fake Auditor: sleeps, then returns a copy of one stored report."""

    def __init__(self, report: dict[str, Any], delay: float) -> None:
        self.report = report
        self.delay = delay

    def audit(
        self,
        request: AuditRequest,
        label: str,
        owner: str,
        cancel: threading.Event | None = None,
    ) -> AuditResult:
        started = time.monotonic()
        if cancel is not None and cancel.wait(self.delay):
            return AuditResult(lhr=None, error_code=codes.RUNNER_INTERRUPTED)
        if cancel is None:
            time.sleep(self.delay)
        lhr = copy.deepcopy(self.report)
        lhr["requestedUrl"] = request.url
        lhr["finalDisplayedUrl"] = request.url
        lhr.setdefault("runWarnings", []).append(STAND_IN_WARNING)
        logger.debug("stand-in audit %s of %s", label, request.url)
        return AuditResult(lhr=lhr, duration=time.monotonic() - started)

    def close(self) -> None:
        """Release nothing: the stand-in starts no processes."""

    def render_html(self, lhr_json: bytes) -> str:
        return (
            "<!doctype html><title>lhfleet stand-in report</title>"
            f"<p>{STAND_IN_WARNING}</p><p>{len(lhr_json)} bytes of JSON.</p>"
        )
