"""The sweeper on real SQLite and PostgreSQL: which runs it publishes again."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

import pytest

from lhfleet.dispatch.celery.config import ClusterConfig
from lhfleet.dispatch.celery.sweeper import Sweeper
from lhfleet.lhr import ReportFacts
from lhfleet.models import JobSecrets, JobSettings
from lhfleet.store.sql import SqlJobStore

SETTINGS = JobSettings(runs=1)
CONFIG = ClusterConfig(stale_after=60)
GONE_OWNER = f"{socket.gethostname()}/{2**22 + 9}/1/0.1"
FACTS = ReportFacts(error_code=None, error_message=None)


@dataclass
class Published:
    """Collects what the sweeper publishes instead of sending it to a broker."""

    run_ids: list[str] = field(default_factory=list)

    def __call__(self, run_ids: list[str]) -> int:
        self.run_ids.extend(run_ids)
        return len(run_ids)


@dataclass
class Setup:
    store: SqlJobStore
    published: Published
    sweeper: Sweeper
    clock: list[float]


@pytest.fixture
def setup(sql_store: SqlJobStore) -> Setup:
    published = Published()
    clock = [time.time()]
    sweeper = Sweeper(sql_store, published, CONFIG, clock=lambda: clock[0])
    return Setup(sql_store, published, sweeper, clock)


def new_job(setup: Setup, urls: int = 1) -> tuple[str, list[str]]:
    targets = [f"http://{index}.test/" for index in range(urls)]
    job = setup.store.create_job(SETTINGS, JobSecrets(), targets)
    return job.id, [run.id for run in setup.store.iter_runs(job.id)]


def test_fresh_queued_run_left_alone(setup: Setup) -> None:
    job_id, _ = new_job(setup)
    assert setup.sweeper.sweep(job_id) == 0


def test_stale_queued_run_published(setup: Setup) -> None:
    job_id, (run_id,) = new_job(setup)
    setup.clock[0] += 61
    setup.sweeper.sweep(job_id)
    assert setup.published.run_ids == [run_id]


def test_live_lease_left_alone(setup: Setup) -> None:
    job_id, (run_id,) = new_job(setup)
    setup.store.claim(run_id, "other-host/1/1/0.1", 30, setup.clock[0])
    assert setup.sweeper.sweep(job_id) == 0


def test_expired_lease_published(setup: Setup) -> None:
    job_id, (run_id,) = new_job(setup)
    setup.store.claim(run_id, "other-host/1/1/0.1", 30, setup.clock[0])
    setup.clock[0] += 31
    setup.sweeper.sweep(job_id)
    assert setup.published.run_ids == [run_id]


def test_lease_of_exited_process_published(setup: Setup) -> None:
    job_id, (run_id,) = new_job(setup)
    setup.store.claim(run_id, GONE_OWNER, 300, setup.clock[0])
    setup.sweeper.sweep(job_id)
    assert setup.published.run_ids == [run_id]


def test_second_sweep_does_not_publish_again(setup: Setup) -> None:
    job_id, _ = new_job(setup)
    setup.clock[0] += 61
    setup.sweeper.sweep(job_id)
    assert setup.sweeper.sweep(job_id) == 0


def test_run_lost_again_published_again(setup: Setup) -> None:
    job_id, (run_id,) = new_job(setup)
    setup.clock[0] += 61
    setup.sweeper.sweep(job_id)
    setup.store.claim(run_id, "other-host/1/1/0.1", 30, setup.clock[0])
    setup.sweeper.sweep(job_id)
    setup.clock[0] += 31
    setup.sweeper.sweep(job_id)
    assert setup.published.run_ids == [run_id, run_id]


def test_completed_job_left_alone(setup: Setup) -> None:
    job_id, (run_id,) = new_job(setup)
    setup.store.claim(run_id, "w1", 30, setup.clock[0])
    setup.store.record_success(run_id, "w1", FACTS, "j", "h", setup.clock[0])
    setup.clock[0] += 61
    assert setup.sweeper.sweep(job_id) == 0


def test_sweep_of_all_jobs_covers_each(setup: Setup) -> None:
    _, first = new_job(setup)
    _, second = new_job(setup)
    setup.clock[0] += 61
    setup.sweeper.sweep()
    assert set(first + second) <= set(setup.published.run_ids)
