"""DynamoJobStore against moto's DynamoDB: conditional writes and exact counters."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.compat import HTTPHeaders

from lhfleet import codes
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.expressions import Update
from lhfleet.aws.store import TRANSACTION_ATTEMPTS, DynamoJobStore
from lhfleet.errors import AwsServiceError, NotFoundError
from lhfleet.lhr import ReportFacts
from lhfleet.models import Job, JobSecrets, JobSettings, JobState, RunState, Target
from lhfleet.ports import Failure

FACTS = ReportFacts(None, None, scores={"performance": 0.5}, metrics={"fcp": 812.5})


def make_job(store: DynamoJobStore, urls: int = 2, runs: int = 2) -> Job:
    targets = [Target(f"http://a.test/{n}", label=f"page {n}") for n in range(urls)]
    return store.create_job(
        JobSettings(runs=runs), JobSecrets({"Cookie": "a=b"}), targets, ["http://h/"]
    )


def test_create_job_total_known(engine: AwsEngine) -> None:
    job = make_job(engine.store, urls=3, runs=2)
    assert job.total == 6
    assert engine.store.get_job(job.id).pending == 6


def test_create_job_items_expire(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    values = engine.store.job_values(job.id)
    run = engine.store.run_values(f"{job.id}-0-0")
    assert values["expires_at"] > time.time() + 29 * 86400
    assert run["expires_at"] == values["expires_at"]


def test_runs_store_url_and_label(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    runs = list(engine.store.iter_runs(job.id))
    assert [run.id for run in runs] == [
        f"{job.id}-0-0",
        f"{job.id}-0-1",
        f"{job.id}-1-0",
        f"{job.id}-1-1",
    ]
    assert runs[2].url == "http://a.test/1"
    assert runs[2].label == "page 1"


def test_secrets_round_trip(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    assert engine.store.get_secrets(job.id).extra_headers == {"Cookie": "a=b"}


def test_claim_twice_second_refused(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    now = time.time()
    first = engine.store.claim(f"{job.id}-0-0", "w1", 60, now)
    second = engine.store.claim(f"{job.id}-0-0", "w2", 60, now)
    assert first is not None
    assert first.attempts == 1
    assert second is None


def test_claim_after_lease_lapses(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    now = time.time()
    engine.store.claim(f"{job.id}-0-0", "w1", 60, now)
    again = engine.store.claim(f"{job.id}-0-0", "w2", 60, now + 61)
    assert again is not None
    assert again.attempts == 2


def test_success_moves_counter_once(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    run_id = f"{job.id}-0-0"
    now = time.time()
    engine.store.claim(run_id, "w1", 60, now)
    first = engine.store.record_success(run_id, "w1", FACTS, "j", "h", now)
    second = engine.store.record_success(run_id, "w1", FACTS, "j", "h", now)
    values = engine.store.job_values(job.id)
    assert first.recorded
    assert not second.recorded
    assert values["succeeded"] == 1
    assert values["settled"] == 1


def test_success_by_stale_owner_refused(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    run_id = f"{job.id}-0-0"
    now = time.time()
    engine.store.claim(run_id, "w1", 60, now)
    engine.store.claim(run_id, "w2", 60, now + 61)
    stale = engine.store.record_success(run_id, "w1", FACTS, "j", "h", now)
    assert not stale.recorded
    assert engine.store.job_values(job.id)["settled"] == 0


def test_success_stores_facts(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    run_id = f"{job.id}-0-0"
    engine.store.claim(run_id, "w1", 60, time.time())
    engine.store.record_success(run_id, "w1", FACTS, "k.json", "k.html", time.time())
    run = engine.store.get_run(run_id)
    assert run.state is RunState.SUCCEEDED
    assert run.metrics == {"fcp": 812.5}
    assert run.scores == {"performance": 0.5}
    assert run.report_json == "k.json"


def test_failure_with_retry_requeues(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    run_id = f"{job.id}-0-0"
    now = time.time()
    engine.store.claim(run_id, "w1", 60, now)
    failure = Failure(code="PROTOCOL_TIMEOUT", message="slow", retry_at=now + 5)
    settlement = engine.store.record_failure(run_id, "w1", failure, now)
    values = engine.store.run_values(run_id)
    assert settlement.recorded
    assert not settlement.settled
    assert values["state"] == "queued"
    assert values["not_before"] == pytest.approx(now + 5)
    assert engine.store.job_values(job.id)["settled"] == 0


def test_terminal_failure_counts_failed(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    run_id = f"{job.id}-0-0"
    now = time.time()
    engine.store.claim(run_id, "w1", 60, now)
    engine.store.record_failure(run_id, "w1", Failure("NO_FCP", "blank"), now)
    values = engine.store.job_values(job.id)
    assert values["failed"] == 1
    assert values["settled"] == 1
    assert engine.store.get_run(run_id).error_code == "NO_FCP"


def test_fail_unsettled_once(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    run_id = f"{job.id}-0-0"
    failure = Failure(codes.DEAD_LETTERED, "gone")
    first = engine.store.fail_unsettled(run_id, failure, time.time())
    second = engine.store.fail_unsettled(run_id, failure, time.time())
    assert first.recorded
    assert not second.recorded
    assert engine.store.job_values(job.id)["failed"] == 1


def test_requeue_failed_restores_counts(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    run_id = f"{job.id}-0-0"
    engine.store.fail_unsettled(run_id, Failure("NO_FCP", "blank"), time.time())
    count = engine.store.requeue_failed(job.id, time.time())
    values = engine.store.job_values(job.id)
    assert count == 1
    assert values["failed"] == 0
    assert values["settled"] == 0
    assert engine.store.get_run(run_id).state is RunState.QUEUED


def test_abandon_fails_queued_runs(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    engine.store.claim(f"{job.id}-0-0", "w1", 60, time.time())
    engine.store.abandon(job.id, Failure(codes.JOB_DEADLINE, "late"), time.time())
    values = engine.store.job_values(job.id)
    assert values["failed"] == 3
    assert engine.store.get_run(f"{job.id}-0-0").state is RunState.RUNNING


def test_release_undoes_attempt(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    run_id = f"{job.id}-0-0"
    engine.store.claim(run_id, "w1", 60, time.time())
    assert engine.store.release(run_id, "w1")
    assert engine.store.get_run(run_id).attempts == 0


def test_claim_next_takes_run_zero_first(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    now = time.time()
    first = engine.store.claim_next(job.id, "w1", 60, now)
    second = engine.store.claim_next(job.id, "w1", 60, now)
    assert first is not None
    assert second is not None
    assert (first.url_index, first.index) == (0, 0)
    assert (second.url_index, second.index) == (1, 0)


def test_next_due_is_lease_expiry(engine: AwsEngine) -> None:
    job = make_job(engine.store, urls=1, runs=1)
    engine.store.claim(f"{job.id}-0-0", "w1", 60, 1000.0)
    assert engine.store.next_due(job.id) == 1060.0


def test_get_job_unknown_raises(engine: AwsEngine) -> None:
    with pytest.raises(NotFoundError, match="No job 'nope'"):
        engine.store.get_job("nope")


def test_get_run_malformed_raises(engine: AwsEngine) -> None:
    with pytest.raises(NotFoundError, match="not a run id"):
        engine.store.get_run("garbage")


def test_list_and_delete_jobs(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    listed = [entry.id for entry in engine.store.list_jobs()]
    removed = engine.store.delete_jobs(time.time() + 1)
    assert job.id in listed
    assert job.id in removed
    assert list(engine.store.iter_runs(job.id)) == []


def test_state_starts_running(engine: AwsEngine) -> None:
    job = make_job(engine.store)
    assert engine.store.get_job(job.id).state is JobState.RUNNING


class ConflictBody:
    """The body of DynamoDB's TransactionConflictException response."""

    def stream(self) -> Iterator[bytes]:
        yield json.dumps(
            {
                "__type": "com.amazonaws.dynamodb.v20120810#"
                "TransactionConflictException",
                "message": "Transaction is ongoing for the item",
            }
        ).encode()


def inject_conflicts(engine: AwsEngine, count: int) -> list[int]:
    """Fail the next ``count`` UpdateItem calls as DynamoDB does while a
    transaction includes the item; moto never does. Returns a call counter."""
    calls = [0]

    def conflict(request: Any, **_: Any) -> Any:
        calls[0] += 1
        if calls[0] > count:
            return None
        headers = HTTPHeaders()
        headers["Content-Type"] = "application/x-amz-json-1.0"
        return AWSResponse(request.url, 400, headers, ConflictBody())

    events = engine.clients.dynamodb.meta.events
    events.register("before-send.dynamodb.UpdateItem", conflict)
    return calls


def test_update_retries_transaction_conflict(
    engine: AwsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lhfleet.aws.store._backoff", lambda attempt: 0.0)
    job = make_job(engine.store)
    calls = inject_conflicts(engine, 2)
    values = engine.store.update_job(job.id, Update(set={"fanout_published": 3}))
    assert values is not None
    assert values["fanout_published"] == 3
    assert calls[0] == 3


def test_update_conflict_gives_up(
    engine: AwsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lhfleet.aws.store._backoff", lambda attempt: 0.0)
    job = make_job(engine.store)
    calls = inject_conflicts(engine, TRANSACTION_ATTEMPTS)
    with pytest.raises(AwsServiceError, match="TransactionConflictException"):
        engine.store.update_job(job.id, Update(set={"fanout_published": 3}))
    assert calls[0] == TRANSACTION_ATTEMPTS
