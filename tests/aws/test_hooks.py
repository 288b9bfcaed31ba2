"""Completion hooks on the AWS engine: the DynamoDB hook ledger and its deliveries.

The ledger tests drive DynamoHookLedger directly against moto's server;
the pipeline tests complete real jobs through the stream handler and a
webhook receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from click.testing import CliRunner

from lhfleet.aws import sweep
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.expressions import Update
from lhfleet.aws.handlers import handle_stream_event
from lhfleet.cli import main
from lhfleet.errors import NotFoundError
from lhfleet.hooks import EVENT, FIRST_LEASE
from lhfleet.models import JobSecrets, JobSettings, Target
from lhfleet.ports import DeliveryAttempt
from tests.aws.conftest import Clock
from tests.aws.pipeline import HookServer, Pipeline
from tests.aws.test_cli import environment

SPEC = {"type": "webhook", "url": "http://127.0.0.1:9/hook", "retries": 2}


def never_gone(_owner: str) -> bool:
    return False


def make_job(engine: AwsEngine) -> str:
    job = engine.store.create_job(
        JobSettings(runs=1), JobSecrets(), [Target("http://a.test/")]
    )
    return job.id


def make_completed_job(engine: AwsEngine) -> str:
    """Store a job and mark it completed, without running anything."""
    job_id = make_job(engine)
    engine.store.update_job(job_id, Update(set={"state": "completed"}))
    return job_id


def attempt(delivery_id: str, number: int, ok: bool) -> DeliveryAttempt:
    return DeliveryAttempt(
        delivery_id=delivery_id,
        number=number,
        started_at=time.time(),
        duration=0.1,
        ok=ok,
        status_code=200 if ok else 503,
        error=None if ok else "HTTP 503",
    )


# The ledger


def test_add_hooks_twice_keeps_first(engine: AwsEngine) -> None:
    job_id = make_completed_job(engine)
    first = engine.ledger.add_hooks(job_id, [SPEC], time.time())
    again = engine.ledger.add_hooks(job_id, [SPEC, SPEC], time.time())
    assert [delivery.id for delivery in first] == [f"{job_id}-hook0"]
    assert [delivery.id for delivery in again] == [f"{job_id}-hook0", f"{job_id}-hook1"]
    assert again[0].created_at == first[0].created_at
    assert again[0].spec == SPEC


def test_claim_waits_for_completion(engine: AwsEngine) -> None:
    job_id = make_job(engine)
    engine.ledger.add_hooks(job_id, [SPEC], time.time())
    claimed = engine.ledger.claim_next(job_id, "w1", 60, time.time(), never_gone)
    assert claimed is None


def test_claim_once_per_lease(engine: AwsEngine) -> None:
    job_id = make_completed_job(engine)
    engine.ledger.add_hooks(job_id, [SPEC], time.time())
    now = time.time()
    first = engine.ledger.claim_next(job_id, "w1", 60, now, never_gone)
    second = engine.ledger.claim_next(job_id, "w2", 60, now, never_gone)
    assert first is not None
    assert first.state == "delivering"
    assert second is None


def test_lapsed_lease_taken_over(engine: AwsEngine) -> None:
    job_id = make_completed_job(engine)
    engine.ledger.add_hooks(job_id, [SPEC], time.time())
    now = time.time()
    engine.ledger.claim_next(job_id, "w1", 60, now, never_gone)
    taken = engine.ledger.claim_next(job_id, "w2", 60, now + 61, never_gone)
    stale = engine.ledger.record_attempt(
        attempt(f"{job_id}-hook0", 1, ok=True), "w1", now + 120
    )
    assert taken is not None
    assert not stale
    assert engine.ledger.attempts(job_id) == []


def test_attempts_recorded_then_finished(engine: AwsEngine) -> None:
    job_id = make_completed_job(engine)
    engine.ledger.add_hooks(job_id, [SPEC], time.time())
    delivery_id = f"{job_id}-hook0"
    engine.ledger.claim_next(job_id, "w1", 60, time.time(), never_gone)
    assert engine.ledger.record_attempt(attempt(delivery_id, 1, ok=False), "w1", 1e10)
    assert engine.ledger.record_attempt(attempt(delivery_id, 2, ok=True), "w1", 1e10)
    assert not engine.ledger.finish(delivery_id, "w2", True, None, time.time())
    assert engine.ledger.finish(delivery_id, "w1", True, None, time.time())
    delivery = engine.ledger.deliveries(job_id)[0]
    attempts = engine.ledger.attempts(job_id)
    assert delivery.state == "delivered"
    assert delivery.attempts == 2
    assert delivery.delivered_at is not None
    assert [(a.number, a.ok, a.status_code) for a in attempts] == [
        (1, False, 503),
        (2, True, 200),
    ]
    assert attempts[0].error == "HTTP 503"


def test_redeliver_failed_and_owing(engine: AwsEngine) -> None:
    job_id = make_completed_job(engine)
    engine.ledger.add_hooks(job_id, [SPEC], time.time())
    engine.ledger.claim_next(job_id, "w1", 60, time.time(), never_gone)
    engine.ledger.finish(f"{job_id}-hook0", "w1", False, "HTTP 400", time.time())
    owing_before = engine.ledger.jobs_owing()
    count = engine.ledger.redeliver_failed(job_id)
    assert job_id not in owing_before
    assert count == 1
    assert engine.ledger.deliveries(job_id)[0].state == "pending"
    assert job_id in engine.ledger.jobs_owing()


def test_malformed_delivery_id_rejected(engine: AwsEngine) -> None:
    with pytest.raises(NotFoundError, match="not a hook delivery id"):
        engine.ledger.finish("nonsense", "w1", True, None, time.time())


# Deliveries through the completion


def test_stream_redelivery_fires_hook_once(
    pipeline: Pipeline, hook_server: HookServer
) -> None:
    submission = pipeline.submit(urls=1, runs=2)
    job_id = submission.job.id
    pipeline.run_to_completion(job_id)
    pipeline.stream.redeliver()
    pipeline.stream.redeliver()
    deliveries = pipeline.engine.ledger.deliveries(job_id)
    assert len(hook_server.received) == 1
    assert hook_server.received[0]["event"] == EVENT
    assert hook_server.received[0]["delivery"] == f"{job_id}-hook0"
    assert [(d.state, d.attempts) for d in deliveries] == [("delivered", 1)]
    assert pipeline.announcement_count() == 1


class CompletionCrash(Exception):
    """Fails the completion after its hooks, as a timed-out invocation would."""


def test_crash_after_hooks_not_refired(
    pipeline: Pipeline, hook_server: HookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    submission = pipeline.submit(urls=1, runs=1)
    job_id = submission.job.id
    pipeline.workers.drain(lambda: pipeline.settled(job_id))

    def crash(*args: Any, **kwargs: Any) -> bool:
        raise CompletionCrash

    monkeypatch.setattr("lhfleet.aws.completion.announce", crash)
    records = pipeline.stream.read_records()
    failed = handle_stream_event(pipeline.engine, {"Records": records})
    monkeypatch.undo()
    retried = handle_stream_event(pipeline.engine, {"Records": records})
    values = pipeline.engine.store.job_values(job_id)
    assert failed["batchItemFailures"] != []
    assert retried["batchItemFailures"] == []
    assert len(hook_server.received) == 1
    assert "hooks_fired_at" in values
    assert pipeline.announcement_count() == 1


def test_failing_hook_retried_and_recorded(
    pipeline: Pipeline, hook_server: HookServer
) -> None:
    hook_server.statuses = [503]
    submission = pipeline.submit(urls=1, runs=1)
    job_id = submission.job.id
    pipeline.run_to_completion(job_id)
    delivery = pipeline.engine.ledger.deliveries(job_id)[0]
    attempts = pipeline.engine.ledger.attempts(job_id)
    assert len(hook_server.received) == 2
    assert delivery.state == "delivered"
    assert [(a.number, a.ok, a.status_code) for a in attempts] == [
        (1, False, 503),
        (2, True, 204),
    ]
    assert attempts[0].error == "HTTP 503"


def test_rejected_hook_failed_then_redelivered(
    pipeline: Pipeline, hook_server: HookServer
) -> None:
    hook_server.statuses = [400]
    submission = pipeline.submit(urls=1, runs=1)
    job_id = submission.job.id
    pipeline.run_to_completion(job_id)
    delivery = pipeline.engine.ledger.deliveries(job_id)[0]
    values = pipeline.engine.store.job_values(job_id)
    assert delivery.state == "failed"
    assert delivery.last_error == "HTTP 400"
    assert values["state"] == "completed"
    assert "hooks_fired_at" in values
    result = CliRunner().invoke(
        main,
        ["aws", "hooks", job_id, "--redeliver", "--json"],
        env=environment(pipeline.engine.config),
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown[0]["state"] == "delivered"
    assert [entry["ok"] for entry in shown[0]["attempts"]] == [False, True]
    assert len(hook_server.received) == 2


def test_leased_delivery_finished_by_sweep(
    pipeline: Pipeline,
    hook_server: HookServer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    submission = pipeline.submit(urls=1, runs=1)
    job_id = submission.job.id
    pipeline.workers.drain(lambda: pipeline.settled(job_id))
    ledger = pipeline.engine.ledger
    original = ledger.claim_next

    def leased_by_dead_completion(job: str, owner: str, *args: Any) -> Any:
        # The first claim goes to an invocation that dies holding the lease.
        monkeypatch.setattr(ledger, "claim_next", original)
        original(job, "lambda/completion/dead", *args)
        return original(job, owner, *args)

    monkeypatch.setattr(ledger, "claim_next", leased_by_dead_completion)
    pipeline.stream.poll_once()
    stuck = pipeline.engine.store.job_values(job_id)
    received_before = len(hook_server.received)
    clock.offset += FIRST_LEASE + 400
    report = sweep.sweep(pipeline.engine, "test-sweep")
    done = pipeline.engine.store.job_values(job_id)
    assert stuck["state"] == "completed"
    assert "hooks_fired_at" not in stuck
    assert received_before == 0
    assert len(hook_server.received) == 1
    assert report.completed == [job_id]
    assert "hooks_fired_at" in done
    assert "sweep" not in done
    assert ledger.deliveries(job_id)[0].state == "delivered"
    assert pipeline.announcement_count() == 1
