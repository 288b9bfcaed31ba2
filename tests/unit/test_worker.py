"""RunExecutor's decisions, with a stand-in auditor and a real SQLite store."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from lhfleet import codes
from lhfleet.auditor import AuditRequest, AuditResult
from lhfleet.errors import ChromeLaunchError
from lhfleet.models import JobSecrets, JobSettings, RunState
from lhfleet.reports.local import LocalReportStore
from lhfleet.store.sql import SqlJobStore, sqlite_url
from lhfleet.worker import RunExecutor

LHR: dict[str, Any] = {
    "lighthouseVersion": "13.5.0",
    "requestedUrl": "http://a.test/",
    "finalDisplayedUrl": "http://a.test/",
    "categories": {"performance": {"score": 1}},
    "audits": {"first-contentful-paint": {"numericValue": 500}},
    "configSettings": {"extraHeaders": {"Authorization": "Bearer hunter2"}},
}


@dataclass
class StandInAuditor:
    """Replays scripted results instead of running Lighthouse."""

    results: list[AuditResult]
    calls: list[str] = field(default_factory=list)

    def audit(
        self,
        request: AuditRequest,
        label: str,
        owner: str,
        cancel: threading.Event | None = None,
    ) -> AuditResult:
        self.calls.append(label)
        return self.results.pop(0)

    def render_html(self, lhr_json: bytes) -> str:
        return "<html>" + lhr_json.decode() + "</html>"


@pytest.fixture
def store(tmp_path: Path) -> SqlJobStore:
    return SqlJobStore(sqlite_url(tmp_path / "jobs.db"))


def execute_once(
    store: SqlJobStore, tmp_path: Path, auditor: StandInAuditor, settings: JobSettings
) -> tuple[str, list[str]]:
    job = store.create_job(settings, JobSecrets(), ["http://a.test/"])
    completed: list[str] = []
    executor = RunExecutor(
        store,
        LocalReportStore(tmp_path / "reports"),
        auditor,  # type: ignore[arg-type]
        owner="w1",
        on_complete=completed.append,
        clock=lambda: 1000.0,
    )
    while (run := store.claim_next(job.id, "w1", 60, now=10**9)) is not None:
        executor.execute(run, settings, JobSecrets())
    return job.id, completed


def test_success_stores_redacted_reports(store: SqlJobStore, tmp_path: Path) -> None:
    auditor = StandInAuditor([AuditResult(LHR)])
    job_id, completed = execute_once(store, tmp_path, auditor, JobSettings(runs=1))
    run = next(store.iter_runs(job_id))
    reports = LocalReportStore(tmp_path / "reports")
    assert run.state is RunState.SUCCEEDED
    assert run.report_json is not None
    assert b"hunter2" not in reports.read_json(run.report_json)
    assert completed == [job_id]


def test_transient_failure_retried_until_attempts_run_out(
    store: SqlJobStore, tmp_path: Path
) -> None:
    failure = AuditResult(None, "PROTOCOL_TIMEOUT", "slow")
    auditor = StandInAuditor([failure, failure, failure])
    job_id, completed = execute_once(
        store, tmp_path, auditor, JobSettings(runs=1, retries=2)
    )
    run = next(store.iter_runs(job_id))
    assert len(auditor.calls) == 3
    assert run.state is RunState.FAILED
    assert run.attempts == 3
    assert completed == [job_id]


def test_transient_failure_then_success(store: SqlJobStore, tmp_path: Path) -> None:
    auditor = StandInAuditor(
        [AuditResult(None, codes.CHROME_CRASHED, "gone"), AuditResult(LHR)]
    )
    job_id, _ = execute_once(store, tmp_path, auditor, JobSettings(runs=1))
    run = next(store.iter_runs(job_id))
    assert run.state is RunState.SUCCEEDED
    assert run.attempts == 2
    assert auditor.calls == [f"{run.id}.a1", f"{run.id}.a2"]


def test_permanent_failure_not_retried(store: SqlJobStore, tmp_path: Path) -> None:
    lhr = {**LHR, "runtimeError": {"code": "NOT_HTML", "message": "a PDF"}}
    auditor = StandInAuditor([AuditResult(lhr, "NOT_HTML", "a PDF")])
    job_id, _ = execute_once(store, tmp_path, auditor, JobSettings(runs=1))
    run = next(store.iter_runs(job_id))
    assert len(auditor.calls) == 1
    assert run.error_code == "NOT_HTML"
    assert run.report_json is not None


def test_chrome_launch_failure_stops_and_releases(
    store: SqlJobStore, tmp_path: Path
) -> None:
    failed = AuditResult(None, codes.CHROME_LAUNCH_FAILED, "no chrome")
    auditor = StandInAuditor([failed, failed])
    with pytest.raises(ChromeLaunchError, match="lhfleet doctor"):
        execute_once(store, tmp_path, auditor, JobSettings(runs=1))
    run = next(store.iter_runs(store.list_jobs()[0].id))
    assert run.state is RunState.QUEUED
    assert run.attempts == 1


def test_single_chrome_launch_failure_retried(
    store: SqlJobStore, tmp_path: Path
) -> None:
    failed = AuditResult(None, codes.CHROME_LAUNCH_FAILED, "no chrome")
    auditor = StandInAuditor([failed, AuditResult(LHR)])
    job_id, _ = execute_once(store, tmp_path, auditor, JobSettings(runs=1))
    run = next(store.iter_runs(job_id))
    assert run.state is RunState.SUCCEEDED
    assert run.attempts == 2


def test_interrupted_run_returns_to_queue(store: SqlJobStore, tmp_path: Path) -> None:
    settings = JobSettings(runs=1)
    job = store.create_job(settings, JobSecrets(), ["http://a.test/"])
    auditor = StandInAuditor([AuditResult(None, codes.RUNNER_INTERRUPTED, "stop")])
    executor = RunExecutor(store, LocalReportStore(tmp_path), auditor, "w1")  # type: ignore[arg-type]
    run = store.claim_next(job.id, "w1", 60, now=1)
    assert run is not None
    assert executor.execute(run, settings, JobSecrets()) is None
    assert store.get_run(run.id).state is RunState.QUEUED
