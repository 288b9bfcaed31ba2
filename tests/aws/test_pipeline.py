"""Whole jobs through the handlers, with moto's SQS, SNS, DynamoDB stream and S3.

CannedAuditor replaces Lighthouse here, and the end-to-end test runs
the real one. Everything else is the code Lambda runs, fed with the events
Lambda sends. Each test checks exact counts and a single completion.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest

from lhfleet import codes
from lhfleet.aws import sweep
from lhfleet.aws.config import AwsClients, AwsConfig
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.provision import provision
from lhfleet.models import RunState
from tests.aws.conftest import Clock
from tests.aws.harness import CannedAuditor
from tests.aws.pipeline import HookServer, Pipeline, build_pipeline, summary


def test_job_completes_once(pipeline: Pipeline, hook_server: HookServer) -> None:
    submission = pipeline.submit(urls=2, runs=2)
    pipeline.run_to_completion(submission.job.id)
    pipeline.stream.redeliver()
    pipeline.stream.poll_once()
    document = summary(pipeline, submission.job.id)
    assert document["job"]["state"] == "completed"
    assert document["job"]["counts"]["succeeded"] == 4
    assert [entry["valid_runs"] for entry in document["urls"]] == [2, 2]
    assert len(hook_server.received) == 1
    assert hook_server.received[0]["job"]["id"] == submission.job.id
    assert pipeline.announcement_count() == 1


def test_summary_matches_local_aggregation(pipeline: Pipeline) -> None:
    from lhfleet.results import results_document  # noqa: PLC0415

    submission = pipeline.submit(urls=1, runs=3)
    pipeline.run_to_completion(submission.job.id)
    stored = summary(pipeline, submission.job.id)
    fresh = results_document(
        pipeline.engine.store, pipeline.engine.reports, submission.job.id
    )
    assert stored == json.loads(json.dumps(fresh))
    assert stored["urls"][0]["representative_run"] == f"{submission.job.id}-0-0"


def test_duplicate_delivery_settles_once(pipeline: Pipeline) -> None:
    submission = pipeline.submit(urls=2, runs=1)
    job_id = submission.job.id
    pipeline.engine.fanout.send([f"{job_id}-0-0", f"{job_id}-1-0", f"{job_id}-0-0"])
    pipeline.run_to_completion(job_id)
    pipeline.workers.drain(lambda: pipeline.workers.poll_once() == 0)
    values = pipeline.engine.store.job_values(job_id)
    assert values["succeeded"] == 2
    assert values["settled"] == 2
    assert len(pipeline.auditor.calls) == 2
    assert pipeline.announcement_count() == 1


def test_concurrent_duplicates_settle_once(pipeline: Pipeline) -> None:
    submission = pipeline.submit(urls=1, runs=1)
    job_id = submission.job.id
    pipeline.engine.fanout.send([f"{job_id}-0-0"] * 8)
    pollers = [threading.Thread(target=pipeline.workers.poll_once) for _ in range(8)]
    for thread in pollers:
        thread.start()
    for thread in pollers:
        thread.join()
    pipeline.run_to_completion(job_id)
    values = pipeline.engine.store.job_values(job_id)
    assert values["succeeded"] == 1
    assert values["settled"] == 1
    assert pipeline.announcement_count() == 1


class WorkerKilled(BaseException):
    """Ends an invocation the way a killed Lambda does: nothing after it runs."""


def test_worker_dies_before_recording(
    pipeline: Pipeline, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    submission = pipeline.submit(urls=1, runs=1)
    job_id = submission.job.id
    real = pipeline.engine.store.record_success

    def die_once(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(pipeline.engine.store, "record_success", real)
        raise WorkerKilled

    monkeypatch.setattr(pipeline.engine.store, "record_success", die_once)
    pipeline.workers.poll_once()
    assert pipeline.workers.crashes == 1
    clock.offset += 120
    pipeline.run_to_completion(job_id)
    run = pipeline.engine.store.get_run(f"{job_id}-0-0")
    keys = pipeline.clients.s3.list_objects_v2(
        Bucket=pipeline.engine.config.bucket, Prefix=f"reports/{job_id}/"
    )["Contents"]
    assert run.state is RunState.SUCCEEDED
    assert run.attempts == 2
    assert run.report_json == f"reports/{job_id}/{job_id}-0-0.a2.report.json.gz"
    assert f"reports/{job_id}/{job_id}-0-0.a1.report.json.gz" in [
        entry["Key"] for entry in keys
    ]
    assert pipeline.engine.store.job_values(job_id)["succeeded"] == 1
    assert pipeline.announcement_count() == 1


class CrashingAuditor(CannedAuditor):
    """A stand-in whose audits of one URL raise, as a worker out of memory would."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url

    def audit(self, request: Any, label: str, owner: str, cancel: Any = None) -> Any:
        if request.url == self.url:
            raise MemoryError("Chrome used all the memory")
        return super().audit(request, label, owner, cancel)


def test_failing_run_reaches_dead_letters(
    engine: AwsEngine, clients: AwsClients
) -> None:
    pipeline = build_pipeline(engine, clients, CrashingAuditor("http://site.test/1"))
    submission = pipeline.submit(urls=2, runs=1)
    job_id = submission.job.id
    deadline = time.monotonic() + 30
    while not pipeline.settled(job_id):
        assert time.monotonic() < deadline
        delivered = pipeline.workers.poll_once() + pipeline.dead_letters.poll_once()
        if not delivered:
            time.sleep(0.3)
    pipeline.stream.poll_once()
    run = engine.store.get_run(f"{job_id}-1-0")
    values = engine.store.job_values(job_id)
    assert run.state is RunState.FAILED
    assert run.error_code == codes.DEAD_LETTERED
    assert "MemoryError: Chrome used all the memory" in (run.error_message or "")
    assert run.attempts == 3
    assert values["succeeded"] == 1
    assert values["failed"] == 1
    assert pipeline.announcement_count() == 1


def test_transient_failure_retried_then_failed(
    engine: AwsEngine, clients: AwsClients
) -> None:
    auditor = CannedAuditor({"http://site.test/0": "PROTOCOL_TIMEOUT"})
    pipeline = build_pipeline(engine, clients, auditor)
    submission = pipeline.submit(urls=1, runs=1, retries=1)
    pipeline.run_to_completion(submission.job.id)
    run = engine.store.get_run(f"{submission.job.id}-0-0")
    assert run.state is RunState.FAILED
    assert run.attempts == 2
    assert run.error_code == "PROTOCOL_TIMEOUT"
    assert len(auditor.calls) == 2


def test_fanout_paused_then_swept(pipeline: Pipeline) -> None:
    pipeline.engine.fanout.batch_size = 2
    budget = iter([100.0, 100.0, 0.0])
    submission = pipeline.submit(urls=5, runs=1, time_left=lambda: next(budget, 0.0))
    assert submission.progress.published == 4
    assert not submission.progress.done
    report = sweep.sweep(pipeline.engine, "test-sweep")
    pipeline.run_to_completion(submission.job.id)
    values = pipeline.engine.store.job_values(submission.job.id)
    assert report.resumed == [submission.job.id]
    assert values["fanout_published"] == 5
    assert values["succeeded"] == 5
    assert pipeline.announcement_count() == 1


class FanOutCrash(Exception):
    """Stops the fan-out part way, as a crash of the submitting process would."""


def test_fanout_crash_resumed_after_lease(pipeline: Pipeline, clock: Clock) -> None:
    calls = {"count": 0}

    def crash_on_third() -> float:
        calls["count"] += 1
        if calls["count"] == 3:
            raise FanOutCrash
        return 100.0

    pipeline.engine.fanout.batch_size = 2
    with pytest.raises(FanOutCrash):
        pipeline.submit(urls=8, runs=1, time_left=crash_on_third)
    job_id = pipeline.engine.store.list_jobs(limit=1)[0].id
    halfway = pipeline.engine.store.job_values(job_id)["fanout_published"]
    early = sweep.sweep(pipeline.engine, "test-sweep")
    clock.offset += 61
    late = sweep.sweep(pipeline.engine, "test-sweep")
    pipeline.run_to_completion(job_id)
    values = pipeline.engine.store.job_values(job_id)
    assert halfway == 4
    assert early.resumed == []
    assert late.resumed == [job_id]
    assert values["succeeded"] == 8
    assert values["settled"] == 8
    assert pipeline.announcement_count() == 1


def test_lost_stream_record_swept(pipeline: Pipeline, hook_server: HookServer) -> None:
    submission = pipeline.submit(urls=1, runs=2)
    job_id = submission.job.id
    pipeline.workers.drain(lambda: pipeline.settled(job_id))
    report = sweep.sweep(pipeline.engine, "test-sweep")
    pipeline.stream.poll_once()
    again = sweep.sweep(pipeline.engine, "test-sweep")
    assert report.completed == [job_id]
    assert again.completed == []
    assert len(hook_server.received) == 1


def test_fanout_through_sns(clients: AwsClients, clock: Clock) -> None:
    config: AwsConfig = provision(
        clients, f"sns{int(time.time() * 1000)}", via_sns=True, visibility_timeout=1
    )
    engine = AwsEngine.build(config, clients, clock)
    pipeline = build_pipeline(engine, clients, CannedAuditor())
    submission = pipeline.submit(urls=2, runs=2)
    pipeline.run_to_completion(submission.job.id)
    values = engine.store.job_values(submission.job.id)
    assert values["succeeded"] == 4
    assert pipeline.announcement_count() == 1


def test_stream_ignores_unfinished_job(pipeline: Pipeline) -> None:
    submission = pipeline.submit(urls=1, runs=2)
    pipeline.stream.poll_once()
    values: Mapping[str, Any] = pipeline.engine.store.job_values(submission.job.id)
    assert values["state"] == "running"
    assert "completion_token" not in values
