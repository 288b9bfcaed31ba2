"""The SQL token store and hook ledger on SQLite and PostgreSQL: races and leases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

from lhfleet.errors import QuotaExceeded
from lhfleet.lhr import ReportFacts
from lhfleet.models import JobSecrets, JobSettings
from lhfleet.ports import DeliveryAttempt, Quota
from lhfleet.store.hook_ledger import SqlHookLedger
from lhfleet.store.sql import MIGRATIONS, SqlJobStore, sqlite_url
from lhfleet.store.tokens import SqlTokenStore

HOOK = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}
FACTS = ReportFacts(error_code=None, error_message=None)


def completed_job(store: SqlJobStore) -> str:
    job = store.create_job(JobSettings(runs=1), JobSecrets(), ["http://a.test/"])
    run = store.claim_next(job.id, "worker", 60, time.time())
    assert run is not None
    store.record_success(run.id, "worker", FACTS, "r.json", "r.html", time.time())
    return job.id


def run_at_once(count: int, action: Callable[[], object]) -> list[object]:
    results: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(count)

    def target() -> None:
        start.wait()
        outcome = action()
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_reserve_race_keeps_quota(sql_store: SqlJobStore) -> None:
    tokens = SqlTokenStore.beside(sql_store)
    token = tokens.create_token("ci", "a" * 64, False, Quota(3, None), time.time())

    def reserve() -> str:
        try:
            tokens.reserve(token, 1, time.time())
        except QuotaExceeded:
            return "refused"
        return "reserved"

    outcomes = run_at_once(8, reserve)
    assert outcomes.count("reserved") == 3


def test_claim_race_has_one_winner(sql_store: SqlJobStore) -> None:
    ledger = SqlHookLedger.beside(sql_store)
    job_id = completed_job(sql_store)
    ledger.add_hooks(job_id, [HOOK], time.time())
    owners = iter(f"owner-{number}" for number in range(8))
    lock = threading.Lock()

    def claim() -> object:
        with lock:
            owner = next(owners)
        return ledger.claim_next(job_id, owner, 60, time.time(), lambda _: False)

    claimed = [item for item in run_at_once(8, claim) if item is not None]
    assert len(claimed) == 1


def test_running_job_owes_nothing_yet(sql_store: SqlJobStore) -> None:
    ledger = SqlHookLedger.beside(sql_store)
    job = sql_store.create_job(JobSettings(runs=1), JobSecrets(), ["http://a.test/"])
    ledger.add_hooks(job.id, [HOOK], time.time())
    claimed = ledger.claim_next(job.id, "me", 60, time.time(), lambda _: False)
    assert claimed is None
    assert ledger.jobs_owing() == []


def test_dead_owners_delivery_is_claimed(sql_store: SqlJobStore) -> None:
    ledger = SqlHookLedger.beside(sql_store)
    job_id = completed_job(sql_store)
    ledger.add_hooks(job_id, [HOOK], time.time())
    now = time.time()
    ledger.claim_next(job_id, "dead", 600, now, lambda _: False)
    alive = ledger.claim_next(job_id, "me", 600, now, lambda _: False)
    gone = ledger.claim_next(job_id, "me", 600, now, lambda owner: owner == "dead")
    assert alive is None
    assert gone is not None
    assert ledger.jobs_owing() == [job_id]


def test_lapsed_lease_is_claimed(sql_store: SqlJobStore) -> None:
    ledger = SqlHookLedger.beside(sql_store)
    job_id = completed_job(sql_store)
    ledger.add_hooks(job_id, [HOOK], time.time())
    now = time.time()
    ledger.claim_next(job_id, "slow", 10, now, lambda _: False)
    later = ledger.claim_next(job_id, "me", 10, now + 11, lambda _: False)
    assert later is not None


def test_lost_lease_records_nothing(sql_store: SqlJobStore) -> None:
    ledger = SqlHookLedger.beside(sql_store)
    job_id = completed_job(sql_store)
    (delivery,) = ledger.add_hooks(job_id, [HOOK], time.time())
    now = time.time()
    ledger.claim_next(job_id, "first", 10, now, lambda _: False)
    ledger.claim_next(job_id, "second", 10, now + 11, lambda _: False)
    attempt = DeliveryAttempt(delivery.id, 1, now, 0.1, ok=True, status_code=200)
    recorded = ledger.record_attempt(attempt, "first", now + 60)
    finished = ledger.finish(delivery.id, "first", True, None, now)
    assert recorded is False
    assert finished is False
    assert ledger.attempts(job_id) == []


def test_failed_delivery_can_be_redelivered(sql_store: SqlJobStore) -> None:
    ledger = SqlHookLedger.beside(sql_store)
    job_id = completed_job(sql_store)
    (delivery,) = ledger.add_hooks(job_id, [HOOK], time.time())
    ledger.claim_next(job_id, "me", 60, time.time(), lambda _: False)
    ledger.finish(delivery.id, "me", False, "HTTP 500", time.time())
    count = ledger.redeliver_failed(job_id)
    assert count == 1
    assert [item.state for item in ledger.deliveries(job_id)] == ["pending"]


def test_pruned_job_drops_its_rows(sql_store: SqlJobStore) -> None:
    ledger = SqlHookLedger.beside(sql_store)
    tokens = SqlTokenStore.beside(sql_store)
    token = tokens.create_token("ci", "b" * 64, False, Quota(), time.time())
    job_id = completed_job(sql_store)
    tokens.attach(tokens.reserve(token, 1, time.time()), job_id)
    ledger.add_hooks(job_id, [HOOK], time.time())
    sql_store.delete_jobs(time.time() + 1)
    assert ledger.deliveries(job_id) == []
    assert tokens.owned_jobs(token.id, 10, 0) == []


def test_migration_0003_downgrades_and_upgrades(tmp_path: Path) -> None:
    store = SqlJobStore(sqlite_url(tmp_path / "jobs.db"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
        command.upgrade(config, "head")
    tokens = SqlTokenStore.beside(store)
    created = tokens.create_token("ci", "c" * 64, True, Quota(), time.time())
    assert tokens.list_tokens() == [created]
