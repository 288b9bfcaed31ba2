"""Adaptive runs in the SQL store, on real SQLite and PostgreSQL.

A settle that leaves a URL over its spread target queues the URL's next
run in the same transaction, so the job cannot complete in between, and
two settles racing on one URL add one run, not two.
"""

from __future__ import annotations

import threading

from lhfleet.lhr import ReportFacts
from lhfleet.models import JobSecrets, JobSettings, JobState, RunState, run_id
from lhfleet.ports import Failure, Settlement
from lhfleet.store.schema import runs as runs_table
from lhfleet.store.sql import SqlJobStore

ADAPTIVE = JobSettings(runs=2, max_runs=4, categories=("performance",))


def facts(score: float) -> ReportFacts:
    return ReportFacts(None, None, {"performance": score}, {"fcp": 1.0, "tti": 2.0})


def settle(store: SqlJobStore, job_id: str, index: int, score: float) -> Settlement:
    run = run_id(job_id, 0, index)
    claimed = store.claim(run, f"w{index}", 60, now=10)
    assert claimed is not None
    return store.record_success(run, f"w{index}", facts(score), "r.json", "r.html", 11)


def test_noisy_url_gets_next_run(sql_store: SqlJobStore) -> None:
    job = sql_store.create_job(ADAPTIVE, JobSecrets(), ["http://a.test/"])
    settle(sql_store, job.id, 0, 0.5)
    outcome = settle(sql_store, job.id, 1, 0.9)
    assert outcome.added_run == run_id(job.id, 0, 2)
    assert not outcome.completed_job


def test_added_run_raises_total(sql_store: SqlJobStore) -> None:
    job = sql_store.create_job(ADAPTIVE, JobSecrets(), ["http://a.test/"])
    settle(sql_store, job.id, 0, 0.5)
    settle(sql_store, job.id, 1, 0.9)
    stored = sql_store.get_job(job.id)
    assert (stored.total, stored.pending, stored.state) == (3, 1, JobState.RUNNING)
    assert sql_store.get_run(run_id(job.id, 0, 2)).state is RunState.QUEUED


def test_settled_url_completes_job(sql_store: SqlJobStore) -> None:
    job = sql_store.create_job(ADAPTIVE, JobSecrets(), ["http://a.test/"])
    settle(sql_store, job.id, 0, 0.90)
    outcome = settle(sql_store, job.id, 1, 0.91)
    assert outcome.added_run is None
    assert outcome.completed_job


def test_no_run_past_max_runs(sql_store: SqlJobStore) -> None:
    job = sql_store.create_job(ADAPTIVE, JobSecrets(), ["http://a.test/"])
    scores = [0.1, 0.9, 0.2, 0.8]
    outcomes = [settle(sql_store, job.id, i, s) for i, s in enumerate(scores)]
    assert [o.added_run is not None for o in outcomes] == [False, True, True, False]
    assert outcomes[-1].completed_job
    assert sql_store.get_job(job.id).total == 4


def test_fixed_job_adds_no_run(sql_store: SqlJobStore) -> None:
    settings = JobSettings(runs=2, categories=("performance",))
    job = sql_store.create_job(settings, JobSecrets(), ["http://a.test/"])
    settle(sql_store, job.id, 0, 0.1)
    outcome = settle(sql_store, job.id, 1, 0.9)
    assert outcome.added_run is None
    assert outcome.completed_job


def test_failed_settle_can_add_run(sql_store: SqlJobStore) -> None:
    job = sql_store.create_job(ADAPTIVE, JobSecrets(), ["http://a.test/"])
    settle(sql_store, job.id, 0, 0.9)
    run = run_id(job.id, 0, 1)
    assert sql_store.claim(run, "w", 60, now=10) is not None
    outcome = sql_store.record_failure(run, "w", Failure("NO_FCP", "no paint"), 11)
    assert outcome.added_run == run_id(job.id, 0, 2)


def test_retry_adds_no_run(sql_store: SqlJobStore) -> None:
    job = sql_store.create_job(ADAPTIVE, JobSecrets(), ["http://a.test/"])
    settle(sql_store, job.id, 0, 0.9)
    run = run_id(job.id, 0, 1)
    assert sql_store.claim(run, "w", 60, now=10) is not None
    failure = Failure("PROTOCOL_TIMEOUT", "slow", retry_at=20)
    outcome = sql_store.record_failure(run, "w", failure, 11)
    assert outcome.added_run is None
    assert sql_store.get_job(job.id).total == 2


def test_existing_next_id_adds_nothing(sql_store: SqlJobStore) -> None:
    job = sql_store.create_job(ADAPTIVE, JobSecrets(), ["http://a.test/"])
    settle(sql_store, job.id, 0, 0.5)
    # Another writer already inserted the next run (without raising the total).
    with sql_store.engine.begin() as conn:
        row = {
            "id": run_id(job.id, 0, 2), "job_id": job.id, "url_index": 0,
            "url": "http://a.test/", "run_index": 2, "state": "queued",
            "attempts": 0, "not_before": 0.0,
        }  # fmt: skip
        conn.execute(runs_table.insert().values(row))
    # Its index is past the settled ones, but the URL still has a pending run.
    outcome = settle(sql_store, job.id, 1, 0.9)
    assert outcome.added_run is None
    assert sql_store.get_job(job.id).total == 2


def test_racing_settles_add_one_run(sql_store: SqlJobStore) -> None:
    job = sql_store.create_job(ADAPTIVE, JobSecrets(), ["http://a.test/"])
    for index in (0, 1):
        claimed = sql_store.claim(run_id(job.id, 0, index), f"w{index}", 60, now=10)
        assert claimed is not None
    barrier = threading.Barrier(2)
    outcomes: list[Settlement] = []

    def settle_one(index: int, score: float) -> None:
        barrier.wait()
        outcomes.append(
            sql_store.record_success(
                run_id(job.id, 0, index), f"w{index}", facts(score), "r", "h", 11
            )
        )

    threads = [
        threading.Thread(target=settle_one, args=(0, 0.2)),
        threading.Thread(target=settle_one, args=(1, 0.9)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(outcome.added_run is not None for outcome in outcomes) == 1
    assert not any(outcome.completed_job for outcome in outcomes)
    assert sql_store.get_job(job.id).total == 3


def test_two_urls_settle_apart(sql_store: SqlJobStore) -> None:
    job = sql_store.create_job(
        ADAPTIVE, JobSecrets(), ["http://a.test/", "http://b.test/"]
    )
    for url_index, scores in ((0, (0.1, 0.9)), (1, (0.90, 0.91))):
        for index, score in enumerate(scores):
            run = run_id(job.id, url_index, index)
            assert sql_store.claim(run, "w", 60, now=10) is not None
            sql_store.record_success(run, "w", facts(score), "r", "h", 11)
    indexes = [(run.url_index, run.index) for run in sql_store.iter_runs(job.id)]
    assert indexes == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
