"""``lhfleet aws retry``: failed runs queued again, exact counters, one completion.

The local engine's ``lhfleet retry`` is the reference: the job reopens,
completes again when the runs settle, and its delivered hooks are not
fired again.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from click.testing import CliRunner

from lhfleet.aws import sweep
from lhfleet.cli import main
from lhfleet.models import JobState, RunState
from tests.aws.conftest import Clock
from tests.aws.pipeline import HookServer, Pipeline, summary
from tests.aws.test_cli import environment

BROKEN = "http://site.test/1"


def failed_job(pipeline: Pipeline) -> str:
    """Complete a job of 3 URLs of 2 runs whose second URL fails every audit."""
    pipeline.auditor.failures[BROKEN] = "NO_FCP"
    submission = pipeline.submit(urls=3, runs=2)
    pipeline.run_to_completion(submission.job.id)
    pipeline.auditor.failures.clear()
    return submission.job.id


def retry(pipeline: Pipeline, job_id: str) -> str:
    result = CliRunner().invoke(
        main,
        ["aws", "retry", job_id, "--no-watch"],
        env=environment(pipeline.engine.config),
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_retry_completes_job_again(pipeline: Pipeline, hook_server: HookServer) -> None:
    job_id = failed_job(pipeline)
    first = summary(pipeline, job_id)
    announced_first = pipeline.announcement_count()
    output = retry(pipeline, job_id)
    reopened = pipeline.engine.store.job_values(job_id)
    pipeline.run_to_completion(job_id)
    pipeline.stream.redeliver()
    pipeline.stream.poll_once()
    values = pipeline.engine.store.job_values(job_id)
    second = summary(pipeline, job_id)
    deliveries = pipeline.engine.ledger.deliveries(job_id)
    assert first["job"]["counts"]["failed"] == 2
    assert "Queued 2 failed runs" in output
    assert "2 messages sent" in output
    assert reopened["state"] == "running"
    assert reopened["failed"] == 0
    assert reopened["settled"] == 4
    assert "summary_key" not in reopened
    assert "republish" not in reopened
    assert values["state"] == "completed"
    assert (values["succeeded"], values["failed"], values["settled"]) == (6, 0, 6)
    assert second["job"]["counts"]["succeeded"] == 6
    assert [entry["valid_runs"] for entry in second["urls"]] == [2, 2, 2]
    assert announced_first == 1
    assert pipeline.announcement_count() == 1
    assert len(hook_server.received) == 1
    assert [(d.state, d.attempts) for d in deliveries] == [("delivered", 1)]
    assert "sweep" not in values


def test_retry_resets_attempts(pipeline: Pipeline) -> None:
    job_id = failed_job(pipeline)
    retry(pipeline, job_id)
    pipeline.run_to_completion(job_id)
    run = pipeline.engine.store.get_run(f"{job_id}-1-0")
    assert run.state is RunState.SUCCEEDED
    assert run.attempts == 1
    assert run.error_code is None


def test_retry_without_failures_changes_nothing(pipeline: Pipeline) -> None:
    submission = pipeline.submit(urls=1, runs=1)
    job_id = submission.job.id
    pipeline.run_to_completion(job_id)
    before = pipeline.engine.store.job_values(job_id)
    output = retry(pipeline, job_id)
    after = pipeline.engine.store.job_values(job_id)
    assert "Queued 0 failed runs" in output
    assert after == before


def test_retry_unknown_job_named(pipeline: Pipeline) -> None:
    result = CliRunner().invoke(
        main, ["aws", "retry", "nope"], env=environment(pipeline.engine.config)
    )
    assert result.exit_code == 2
    assert "No job 'nope'" in result.output


def test_concurrent_retries_count_once(pipeline: Pipeline) -> None:
    # NOTE: the requeues that lose cancel their transactions. moto 5.2.5 then
    # replaces the table with a copy, and stream iterators taken before then
    # return none of its later records. So this test checks the counts, not
    # the completion that follows.
    job_id = failed_job(pipeline)
    counts: list[int] = []
    lock = threading.Lock()

    def requeue(owner: str) -> None:
        count = pipeline.engine.store.requeue_failed(job_id, time.time(), owner)
        with lock:
            counts.append(count)

    threads = [threading.Thread(target=requeue, args=(f"cli-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values = pipeline.engine.store.job_values(job_id)
    queued = [
        run.id
        for run in pipeline.engine.store.iter_runs(job_id)
        if run.state is RunState.QUEUED
    ]
    assert len(counts) == 4
    assert sum(counts) == 2
    assert values["failed"] == 0
    assert values["settled"] == 4
    assert queued == [f"{job_id}-1-0", f"{job_id}-1-1"]
    published = pipeline.engine.fanout.republish(job_id, values["republish_owner"])
    pipeline.workers.drain(lambda: pipeline.settled(job_id))
    settled = pipeline.engine.store.job_values(job_id)
    assert published == 2
    assert (settled["succeeded"], settled["failed"]) == (6, 0)
    assert settled["settled"] == 6


def test_stopped_publisher_swept(pipeline: Pipeline, clock: Clock) -> None:
    job_id = failed_job(pipeline)
    pipeline.announcement_count()
    count = pipeline.engine.store.requeue_failed(job_id, clock(), "stopped-cli")
    early = sweep.sweep(pipeline.engine, "test-sweep")
    clock.offset += 61
    late = sweep.sweep(pipeline.engine, "test-sweep")
    pipeline.run_to_completion(job_id)
    values = pipeline.engine.store.job_values(job_id)
    assert count == 2
    assert early.republished == []
    assert late.republished == [job_id]
    assert values["state"] == "completed"
    assert values["succeeded"] == 6
    assert "republish" not in values
    assert pipeline.announcement_count() == 1


def test_stale_record_does_not_complete(pipeline: Pipeline) -> None:
    pipeline.auditor.failures[BROKEN] = "NO_FCP"
    submission = pipeline.submit(urls=3, runs=1)
    job_id = submission.job.id
    pipeline.workers.drain(lambda: pipeline.settled(job_id))
    pipeline.auditor.failures.clear()
    retry(pipeline, job_id)
    pipeline.stream.poll_once()
    reopened = pipeline.engine.store.job_values(job_id)
    pipeline.run_to_completion(job_id)
    values = pipeline.engine.store.job_values(job_id)
    assert reopened["state"] == "running"
    assert "completion_token" not in reopened
    assert values["state"] == "completed"
    assert (values["succeeded"], values["failed"]) == (3, 0)
    assert pipeline.announcement_count() == 1


def test_completion_overtaken_by_retry(
    pipeline: Pipeline, hook_server: HookServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline.auditor.failures[BROKEN] = "NO_FCP"
    submission = pipeline.submit(urls=3, runs=1)
    job_id = submission.job.id
    pipeline.workers.drain(lambda: pipeline.settled(job_id))
    pipeline.auditor.failures.clear()
    reports = pipeline.engine.reports
    put_summary = reports.put_summary

    def retried_meanwhile(*args: Any) -> str:
        # A retry lands between the completion's claim and its first write.
        monkeypatch.setattr(reports, "put_summary", put_summary)
        pipeline.engine.store.requeue_failed(job_id, time.time(), "cli")
        return put_summary(*args)

    monkeypatch.setattr(reports, "put_summary", retried_meanwhile)
    pipeline.stream.poll_once()
    overtaken = pipeline.engine.store.job_values(job_id)
    received_overtaken = len(hook_server.received)
    pipeline.engine.fanout.republish(job_id, "cli")
    pipeline.run_to_completion(job_id)
    values = pipeline.engine.store.job_values(job_id)
    assert overtaken["state"] == JobState.RUNNING.value
    assert "summary_key" not in overtaken
    assert received_overtaken == 0
    assert values["state"] == "completed"
    assert "summary_key" in values
    assert summary(pipeline, job_id)["job"]["counts"]["succeeded"] == 3
    assert len(hook_server.received) == 1
    assert pipeline.announcement_count() == 1
