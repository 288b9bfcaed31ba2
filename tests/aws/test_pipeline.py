"""Whole jobs through the handlers, with moto's SQS, SNS, DynamoDB stream and S3.

CannedAuditor replaces Lighthouse here, and the end-to-end test runs
the real one. Everything else is the code Lambda runs, fed with the events
Lambda sends. Each test checks exact counts and a single completion.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lhfleet import codes
from lhfleet.aws import sweep
from lhfleet.aws.config import AwsClients, AwsConfig
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.handlers import (
    handle_dead_letter_event,
    handle_stream_event,
    handle_worker_event,
)
from lhfleet.aws.provision import dead_letter_queue_url, provision, queue_arn
from lhfleet.aws.reports import summary_key
from lhfleet.aws.submit import Submission, submit_job
from lhfleet.aws.worker import RunWorker
from lhfleet.models import JobSecrets, JobSettings, RunState, Target
from tests.aws.conftest import Clock
from tests.aws.harness import CannedAuditor, QueuePoller, StreamPoller


class HookServer(ThreadingHTTPServer):
    received: list[dict[str, Any]]


class HookHandler(BaseHTTPRequestHandler):
    server: HookServer

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.received.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer(("127.0.0.1", 0), HookHandler)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@dataclass
class Pipeline:
    """The functions of one deployment, each fed by its own event source."""

    engine: AwsEngine
    clients: AwsClients
    auditor: CannedAuditor
    workers: QueuePoller
    dead_letters: QueuePoller
    stream: StreamPoller
    announcements: str
    hooks: list[str] = field(default_factory=list)

    def submit(self, urls: int, runs: int, **options: Any) -> Submission:
        targets = [Target(f"http://site.test/{n}") for n in range(urls)]
        settings = JobSettings(runs=runs, retries=options.pop("retries", 2))
        return submit_job(
            self.engine,
            targets,
            settings,
            JobSecrets(),
            self.hooks,
            owner="test-submit",
            **options,
        )

    def settled(self, job_id: str) -> bool:
        values = self.engine.store.job_values(job_id)
        return bool(values["settled"] >= values["total"])

    def run_to_completion(self, job_id: str, timeout: float = 30.0) -> None:
        self.workers.drain(lambda: self.settled(job_id), timeout)
        self.stream.poll_once()

    def announcement_count(self) -> int:
        count = 0
        while True:
            response = self.clients.sqs.receive_message(
                QueueUrl=self.announcements, MaxNumberOfMessages=10
            )
            messages = response.get("Messages", [])
            if not messages:
                return count
            count += len(messages)
            for message in messages:
                self.clients.sqs.delete_message(
                    QueueUrl=self.announcements, ReceiptHandle=message["ReceiptHandle"]
                )


def build_pipeline(
    engine: AwsEngine, clients: AwsClients, auditor: CannedAuditor
) -> Pipeline:
    runs = RunWorker(engine, auditor, extra_chrome_flags=False)
    workers = QueuePoller(
        clients,
        engine.config.queue_url,
        lambda event, context: handle_worker_event(runs, event, context),
    )
    dead_letters = QueuePoller(
        clients,
        dead_letter_queue_url(clients, engine.config),
        lambda event, context: handle_dead_letter_event(engine, event),
    )
    stream = StreamPoller(
        clients,
        engine.config.jobs_table,
        lambda event, context: handle_stream_event(engine, event),
    )
    announcements = clients.sqs.create_queue(
        QueueName=engine.config.jobs_table + "-announcements"
    )["QueueUrl"]
    clients.sns.subscribe(
        TopicArn=engine.config.completion_topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn(clients, announcements),
    )
    return Pipeline(
        engine, clients, auditor, workers, dead_letters, stream, announcements
    )


@pytest.fixture
def pipeline(
    engine: AwsEngine, clients: AwsClients, hook_server: HookServer
) -> Pipeline:
    built = build_pipeline(engine, clients, CannedAuditor())
    built.hooks = [f"http://127.0.0.1:{hook_server.server_address[1]}/done"]
    return built


def summary(pipeline: Pipeline, job_id: str) -> dict[str, Any]:
    body = pipeline.engine.reports.read(summary_key(job_id))
    document: dict[str, Any] = json.loads(body)
    return document


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
