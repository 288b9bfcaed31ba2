"""The patient job store: a real PostgreSQL going away, and replies lost on commit."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from lhfleet.dispatch.celery.durable import DurableJobStore, read_lease
from lhfleet.errors import StoreError
from lhfleet.lhr import ReportFacts
from lhfleet.models import JobSecrets, JobSettings, RunState
from lhfleet.ports import Failure, Settlement
from lhfleet.store.sql import SqlJobStore
from tests.cluster.harness import Database
from tests.cluster.tcpproxy import TcpProxy

FACTS = ReportFacts(error_code=None, error_message=None, metrics={"fcp": 1.0})
SETTINGS = JobSettings(runs=1)


def lost_reply() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("COMMIT", {}, ConnectionError("connection lost"))


class LostReplyStore(SqlJobStore):
    """A fake fault on a real store: the next write commits, then its reply is lost."""

    lose_next = False

    def _lose(self, result: Any) -> Any:
        if self.lose_next:
            self.lose_next = False
            raise lost_reply()
        return result

    def claim(self, run_id: str, owner: str, lease: float, now: float) -> Any:
        return self._lose(super().claim(run_id, owner, lease, now))

    def record_success(self, *args: Any, **kwargs: Any) -> Settlement:
        result: Settlement = self._lose(super().record_success(*args, **kwargs))
        return result

    def record_failure(self, *args: Any, **kwargs: Any) -> Settlement:
        result: Settlement = self._lose(super().record_failure(*args, **kwargs))
        return result


@pytest.fixture
def proxied(database: Database) -> Iterator[tuple[DurableJobStore, TcpProxy]]:
    proxy = TcpProxy("127.0.0.1", 5432)
    url = database.url(proxy.port).replace("postgresql://", "postgresql+psycopg://")
    inner = SqlJobStore(url)
    yield DurableJobStore(inner, patience=30), proxy
    inner.close()
    proxy.close()


@pytest.fixture
def lossy(sql_store: SqlJobStore) -> Iterator[tuple[DurableJobStore, LostReplyStore]]:
    inner = LostReplyStore(sql_store.url)
    yield DurableJobStore(inner, patience=5, sleep=lambda _: None), inner
    inner.close()


def leased_run(store: DurableJobStore, owner: str = "w1") -> str:
    job = store.create_job(SETTINGS, JobSecrets(), ["http://a.test/"])
    run = store.claim_next(job.id, owner, 60, time.time())
    assert run is not None
    return run.id


def test_write_during_outage_waits_for_database(
    proxied: tuple[DurableJobStore, TcpProxy],
) -> None:
    store, proxy = proxied
    run_id = leased_run(store)
    proxy.cut()
    threading.Timer(2.0, proxy.restore).start()
    settlement = store.record_success(run_id, "w1", FACTS, "j", "h", time.time())
    assert settlement.completed_job


def test_outage_longer_than_patience_raises(
    proxied: tuple[DurableJobStore, TcpProxy],
) -> None:
    store, proxy = proxied
    run_id = leased_run(store)
    proxy.cut()
    store.patience = 1.0
    with pytest.raises(StoreError, match="unreachable for 1 s"):
        store.record_success(run_id, "w1", FACTS, "j", "h", time.time())


def test_outage_error_names_no_password(
    proxied: tuple[DurableJobStore, TcpProxy],
) -> None:
    store, proxy = proxied
    proxy.cut()
    store.patience = 0.0
    with pytest.raises(StoreError) as raised:
        store.get_job("x")
    assert "postgres@" not in str(raised.value)


def test_lost_reply_of_success_is_recognised(
    lossy: tuple[DurableJobStore, LostReplyStore],
) -> None:
    store, inner = lossy
    run_id = leased_run(store)
    inner.lose_next = True
    settlement = store.record_success(run_id, "w1", FACTS, "j", "h", time.time())
    assert settlement == Settlement(recorded=True, settled=True, completed_job=True)


def test_lost_reply_of_retry_is_recognised(
    lossy: tuple[DurableJobStore, LostReplyStore],
) -> None:
    store, inner = lossy
    run_id = leased_run(store)
    inner.lose_next = True
    now = time.time()
    failure = Failure(code="CHROME_CRASHED", message="gone", retry_at=now + 5)
    settlement = store.record_failure(run_id, "w1", failure, now)
    assert settlement == Settlement(recorded=True, settled=False, completed_job=False)


def test_lost_reply_after_other_writer_is_not_ours(
    lossy: tuple[DurableJobStore, LostReplyStore],
) -> None:
    store, inner = lossy
    run_id = leased_run(store)
    inner.record_success(run_id, "w1", FACTS, "j", "h", time.time() - 5)
    inner.lose_next = True
    run = store.claim(run_id, "w2", 60, time.time())
    assert run is None


def test_lost_reply_of_claim_returns_the_lease(
    lossy: tuple[DurableJobStore, LostReplyStore],
) -> None:
    store, inner = lossy
    job = store.create_job(SETTINGS, JobSecrets(), ["http://a.test/"])
    run_id = next(store.iter_runs(job.id)).id
    inner.lose_next = True
    run = store.claim(run_id, "w1", 60, time.time())
    assert run is not None
    assert run.attempts == 1


def test_read_lease_shows_owner(
    lossy: tuple[DurableJobStore, LostReplyStore],
) -> None:
    store, inner = lossy
    run_id = leased_run(store, owner="w9")
    view = read_lease(inner, run_id)
    assert view is not None
    assert (view.state, view.owner) == (RunState.RUNNING, "w9")
