"""One task delivery of a run, on real SQLite and PostgreSQL: lease, audit, record."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lhfleet import codes
from lhfleet.auditor import AuditRequest, AuditResult
from lhfleet.dispatch.celery import delivery
from lhfleet.dispatch.celery.config import ClusterConfig
from lhfleet.dispatch.celery.delivery import Deliverer
from lhfleet.dispatch.celery.durable import DurableJobStore
from lhfleet.dispatch.celery.standin import minimal_report
from lhfleet.models import JobSecrets, JobSettings, RunState
from lhfleet.reports.local import LocalReportStore
from lhfleet.store.sql import SqlJobStore

SETTINGS = JobSettings(runs=1, timeout=30, retries=1)
CONFIG = ClusterConfig(lease_margin=5)
GONE_OWNER = f"{socket.gethostname()}/{2**22 + 7}/1/0.1"


@dataclass
class ScriptedAuditor:
    """A fake auditor: replays scripted results, then succeeds with a stored report."""

    results: list[AuditResult] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def audit(
        self,
        request: AuditRequest,
        label: str,
        owner: str,
        cancel: threading.Event | None = None,
    ) -> AuditResult:
        with self.lock:
            self.calls.append(label)
            scripted = self.results.pop(0) if self.results else None
        time.sleep(0.05)
        report = {**minimal_report(), "requestedUrl": request.url}
        return scripted or AuditResult(report, duration=0.05)

    def render_html(self, lhr_json: bytes) -> str:
        return "<html>stand-in</html>"


@dataclass
class Setup:
    store: DurableJobStore
    auditor: ScriptedAuditor
    completed: list[str]
    deliverer: Deliverer
    clock: list[float]


@pytest.fixture
def setup(sql_store: SqlJobStore, tmp_path: Path) -> Setup:
    store = DurableJobStore(sql_store, patience=5)
    auditor = ScriptedAuditor()
    completed: list[str] = []
    clock = [time.time()]
    deliverer = Deliverer(
        store=store,
        reports=LocalReportStore(tmp_path / "reports"),
        auditor=auditor,  # type: ignore[arg-type]
        config=CONFIG,
        owner=lambda: f"test-worker/{threading.get_ident()}",
        on_complete=completed.append,
        clock=lambda: clock[0],
    )
    return Setup(store, auditor, completed, deliverer, clock)


def new_run(setup: Setup, urls: int = 1) -> list[str]:
    targets = [f"http://{index}.test/" for index in range(urls)]
    job = setup.store.create_job(SETTINGS, JobSecrets(), targets)
    return [run.id for run in setup.store.iter_runs(job.id)]


def test_delivery_settles_queued_run(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    assert setup.deliverer.deliver(run_id).action == delivery.SETTLED
    assert setup.store.get_run(run_id).state is RunState.SUCCEEDED


def test_delivery_twice_audits_once(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    setup.deliverer.deliver(run_id)
    assert setup.deliverer.deliver(run_id).action == delivery.DUPLICATE
    assert len(setup.auditor.calls) == 1


def test_delivery_twice_completes_job_once(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    setup.deliverer.deliver(run_id)
    setup.deliverer.deliver(run_id)
    assert setup.completed == [delivery.job_of(run_id)]


def test_concurrent_deliveries_record_one_outcome(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    outcomes: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: outcomes.append(setup.deliverer.deliver(run_id).action)
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count(delivery.SETTLED) == 1
    assert setup.store.get_run(run_id).attempts == 1


def test_run_leased_by_live_worker_waits_for_lease(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    setup.store.claim(run_id, "other-host/1/1/0.1", 40, setup.clock[0])
    outcome = setup.deliverer.deliver(run_id)
    assert outcome.action == delivery.WAITING
    assert outcome.retry_in == pytest.approx(40 + delivery.LEASE_SLACK, abs=0.1)


def test_run_leased_by_exited_process_is_taken_over(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    setup.store.claim(run_id, GONE_OWNER, 40, setup.clock[0])
    assert setup.deliverer.deliver(run_id).action == delivery.SETTLED


def test_expired_lease_is_taken_over(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    setup.store.claim(run_id, "other-host/1/1/0.1", 40, setup.clock[0])
    setup.clock[0] += 41
    assert setup.deliverer.deliver(run_id).action == delivery.SETTLED


def test_transient_failure_asks_for_retry_at_backoff(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    setup.auditor.results.append(AuditResult(None, codes.CHROME_CRASHED, "gone"))
    outcome = setup.deliverer.deliver(run_id)
    assert outcome.action == delivery.REQUEUED
    assert outcome.retry_in == pytest.approx(2.0, rel=0.25)


def test_requeued_run_waits_until_due(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    setup.auditor.results.append(AuditResult(None, codes.CHROME_CRASHED, "gone"))
    setup.deliverer.deliver(run_id)
    assert setup.deliverer.deliver(run_id).action == delivery.WAITING


def test_requeued_run_settles_when_due(setup: Setup) -> None:
    (run_id,) = new_run(setup)
    setup.auditor.results.append(AuditResult(None, codes.CHROME_CRASHED, "gone"))
    setup.deliverer.deliver(run_id)
    setup.clock[0] += 10
    assert setup.deliverer.deliver(run_id).action == delivery.SETTLED


def test_chrome_failing_twice_releases_run(setup: Setup) -> None:
    first, second = new_run(setup, urls=2)
    failure = AuditResult(None, codes.CHROME_LAUNCH_FAILED, "no chrome")
    setup.auditor.results += [failure, failure]
    setup.deliverer.deliver(first)
    outcome = setup.deliverer.deliver(second)
    assert outcome.retry_in == delivery.CHROME_RETRY
    assert setup.store.get_run(second).state is RunState.QUEUED
    assert setup.store.get_run(second).attempts == 0


def test_unknown_job_drops_task(setup: Setup) -> None:
    outcome = setup.deliverer.deliver("20990101-000000-abcdef-0-0")
    assert outcome == delivery.Outcome(delivery.MISSING)


def test_last_of_many_runs_completes_job_once(setup: Setup) -> None:
    run_ids = new_run(setup, urls=5)
    for run_id in run_ids * 2:
        setup.deliverer.deliver(run_id)
    assert setup.completed == [delivery.job_of(run_ids[0])]
