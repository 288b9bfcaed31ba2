"""The SQL job store on real SQLite and PostgreSQL: conditional writes and counts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from lhfleet.errors import NotFoundError
from lhfleet.lhr import ReportFacts
from lhfleet.models import JobSecrets, JobSettings, JobState, RunState
from lhfleet.ports import Failure
from lhfleet.store.sql import SqlJobStore, sqlite_url

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
FACTS = ReportFacts(error_code=None, error_message=None, metrics={"fcp": 1.0})
SETTINGS = JobSettings(runs=2)


def _postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_ADMIN)
        with engine.connect():
            pass
        engine.dispose()
    except sa.exc.OperationalError:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlJobStore]:
    if request.param == "sqlite":
        job_store = SqlJobStore(sqlite_url(tmp_path / "jobs.db"))
        yield job_store
        job_store.close()
        return
    if not _postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"lhfleet_test_{tmp_path.name.lower().replace('-', '_')}"[:60]
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    job_store = SqlJobStore(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    yield job_store
    job_store.close()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def test_create_job_queues_one_run_per_url_and_index(store: SqlJobStore) -> None:
    job = store.create_job(SETTINGS, JobSecrets(), ["http://a.test/", "http://b.test/"])
    runs = list(store.iter_runs(job.id))
    assert job.total == 4
    assert [(run.url_index, run.index) for run in runs] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (1, 1),
    ]
    assert {run.state for run in runs} == {RunState.QUEUED}


def test_get_job_unknown_id_raises_not_found(store: SqlJobStore) -> None:
    with pytest.raises(NotFoundError, match="lhfleet jobs"):
        store.get_job("no-such-job")


def test_secrets_kept_apart_from_settings(store: SqlJobStore) -> None:
    secrets = JobSecrets(extra_headers={"Authorization": "Bearer x"})
    job = store.create_job(SETTINGS, secrets, ["http://a.test/"])
    assert store.get_secrets(job.id).extra_headers == {"Authorization": "Bearer x"}
    assert "Bearer" not in repr(store.get_job(job.id))


def test_claim_next_leases_each_run_once(store: SqlJobStore) -> None:
    job = store.create_job(SETTINGS, JobSecrets(), ["http://a.test/"])
    first = store.claim_next(job.id, "w1", 60, now=100)
    second = store.claim_next(job.id, "w2", 60, now=100)
    third = store.claim_next(job.id, "w3", 60, now=100)
    assert first is not None
    assert second is not None
    assert first.id != second.id
    assert third is None
    assert first.attempts == 1


def test_success_by_stale_owner_is_not_recorded(store: SqlJobStore) -> None:
    job = store.create_job(JobSettings(runs=1), JobSecrets(), ["http://a.test/"])
    run = store.claim_next(job.id, "w1", 10, now=100)
    assert run is not None
    retaken = store.claim_next(job.id, "w2", 10, now=200)
    assert retaken is not None
    assert retaken.attempts == 2

    stale = store.record_success(run.id, "w1", FACTS, "a.json", "a.html", now=201)
    fresh = store.record_success(run.id, "w2", FACTS, "b.json", "b.html", now=202)

    assert not stale.recorded
    assert fresh.recorded
    assert fresh.completed_job
    assert store.get_run(run.id).report_json == "b.json"


def test_duplicate_settle_counts_once(store: SqlJobStore) -> None:
    job = store.create_job(SETTINGS, JobSecrets(), ["http://a.test/"])
    run = store.claim_next(job.id, "w1", 60, now=100)
    assert run is not None
    store.record_success(run.id, "w1", FACTS, "a.json", "a.html", now=101)
    again = store.record_success(run.id, "w1", FACTS, "a.json", "a.html", now=102)
    failure = store.record_failure(run.id, "w1", Failure("NO_FCP", "x"), now=103)
    assert not again.recorded
    assert not failure.recorded
    job = store.get_job(job.id)
    assert (job.succeeded, job.failed, job.pending) == (1, 0, 1)


def test_retry_requeues_without_counting(store: SqlJobStore) -> None:
    job = store.create_job(JobSettings(runs=1), JobSecrets(), ["http://a.test/"])
    run = store.claim_next(job.id, "w1", 60, now=100)
    assert run is not None
    outcome = store.record_failure(
        run.id, "w1", Failure("PROTOCOL_TIMEOUT", "slow", retry_at=150), now=101
    )
    assert outcome.recorded
    assert not outcome.settled
    assert store.claim_next(job.id, "w1", 60, now=120) is None
    assert store.next_due(job.id) == 150
    again = store.claim_next(job.id, "w1", 60, now=150)
    assert again is not None
    assert again.attempts == 2
    assert store.get_job(job.id).failed == 0


def test_terminal_failure_completes_job(store: SqlJobStore) -> None:
    job = store.create_job(JobSettings(runs=1), JobSecrets(), ["http://a.test/"])
    run = store.claim_next(job.id, "w1", 60, now=100)
    assert run is not None
    outcome = store.record_failure(run.id, "w1", Failure("NOT_HTML", "pdf"), now=101)
    assert outcome.completed_job
    done = store.get_job(job.id)
    assert done.state is JobState.COMPLETED
    assert done.failed == 1
    failed = store.get_run(run.id)
    assert failed.error_code == "NOT_HTML"
    assert failed.attempts == 1


def test_release_returns_run_and_attempt(store: SqlJobStore) -> None:
    job = store.create_job(JobSettings(runs=1), JobSecrets(), ["http://a.test/"])
    run = store.claim_next(job.id, "w1", 60, now=100)
    assert run is not None
    assert store.release(run.id, "w1")
    assert not store.release(run.id, "w1")
    released = store.get_run(run.id)
    assert released.state is RunState.QUEUED
    assert released.attempts == 0


def test_release_owners_frees_only_gone_owners(store: SqlJobStore) -> None:
    job = store.create_job(SETTINGS, JobSecrets(), ["http://a.test/"])
    store.claim_next(job.id, "dead", 600, now=100)
    store.claim_next(job.id, "alive", 600, now=100)
    released = store.release_owners(job.id, lambda owner: owner == "dead")
    states = sorted(run.state.value for run in store.iter_runs(job.id))
    assert released == 1
    assert states == ["queued", "running"]


def test_requeue_failed_reopens_completed_job(store: SqlJobStore) -> None:
    job = store.create_job(JobSettings(runs=1), JobSecrets(), ["http://a.test/"])
    run = store.claim_next(job.id, "w1", 60, now=100)
    assert run is not None
    store.record_failure(run.id, "w1", Failure("NO_FCP", "blank"), now=101)
    assert store.requeue_failed(job.id, now=102) == 1
    reopened = store.get_job(job.id)
    assert reopened.state is JobState.RUNNING
    assert (reopened.failed, reopened.pending) == (0, 1)


def test_concurrent_settles_complete_job_once(store: SqlJobStore) -> None:
    urls = [f"http://host{number}.test/" for number in range(20)]
    job = store.create_job(JobSettings(runs=2), JobSecrets(), urls)
    completions: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while True:
            run = store.claim_next(job.id, name, 60, now=100)
            if run is None:
                return
            outcome = store.record_success(run.id, name, FACTS, "j", "h", now=101)
            if outcome.completed_job:
                with lock:
                    completions.append(run.id)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    done = store.get_job(job.id)
    assert len(completions) == 1
    assert done.succeeded == 40
    assert done.state is JobState.COMPLETED
