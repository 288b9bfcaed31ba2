"""Real `lhfleet worker` processes on real brokers, with faults injected.

The audits are done by the audit stand-in (a fake auditor: a stored report
after a short delay), because these faults are about the control plane:
brokers, leases and conditional writes. Each test checks that every run
ends with one outcome and that the job completes once.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections import Counter
from pathlib import Path

from lhfleet import engines, service
from lhfleet.dispatch.celery import submit as cluster_submit
from lhfleet.dispatch.celery.app import create_app
from lhfleet.dispatch.celery.config import ClusterConfig
from lhfleet.models import JobSecrets, JobSettings, JobState, RunState
from lhfleet.store.sql import SqlJobStore
from tests.cluster.harness import (
    Cluster,
    ClusterFactory,
    Database,
    RedisServer,
    wait_for,
)
from tests.cluster.tcpproxy import TcpProxy

COMPLETING = "this worker settled its last run; completing it"
AUDITING = re.compile(r"run (\S+) attempt \d+: auditing")
STAND_IN = ("--stand-in", "--concurrency", "1")
JOB_TIMEOUT = 90.0
SETTINGS = JobSettings(runs=1, timeout=10, categories=("performance",))


def submit(cluster: Cluster, urls: int, runs: int) -> str:
    """Store a job and publish its runs, as `lhfleet run --engine celery` does."""
    workspace = engines.open_workspace(engines.EngineSpec.resolve(environ=cluster.env))
    app = create_app(ClusterConfig.from_env(cluster.env))
    targets = [f"http://127.0.0.1:9/page{index}" for index in range(urls)]
    job = service.submit(
        workspace, targets, dataclasses.replace(SETTINGS, runs=runs), JobSecrets()
    )
    published = cluster_submit.submit(workspace, app, job, threading.Event())
    assert published == urls * runs
    return job.id


def open_store(database: Database, port: int | None = None) -> SqlJobStore:
    url = database.url(port).replace("postgresql://", "postgresql+psycopg://")
    return SqlJobStore(url)


def wait_completed(store: SqlJobStore, job_id: str) -> None:
    def completed() -> bool:
        return store.get_job(job_id).state is JobState.COMPLETED

    wait_for(completed, JOB_TIMEOUT, f"job {job_id} to complete", step=0.5)


def audits(cluster: Cluster) -> Counter[str]:
    """Count the audits that the workers' logs report, per run."""
    return Counter(AUDITING.findall(cluster.logs()))


def settled_states(store: SqlJobStore, job_id: str) -> Counter[RunState]:
    return Counter(run.state for run in store.iter_runs(job_id))


def publish_again(cluster: Cluster, store: SqlJobStore, job_id: str) -> int:
    """Publish every run of the job a second time, as a duplicating broker would."""
    config = ClusterConfig(
        broker=cluster.env["LHFLEET_BROKER"], queue=cluster.env["LHFLEET_QUEUE"]
    )
    run_ids = [run.id for run in store.iter_runs(job_id)]
    return create_app(config).publish_runs(run_ids, lambda: False)


def test_duplicate_tasks_give_one_outcome_each(
    make_cluster: ClusterFactory,
    database: Database,
    rabbitmq_broker: str,
    tmp_path: Path,
) -> None:
    cluster = make_cluster(database.url(), rabbitmq_broker, str(tmp_path / "reports"))
    store = open_store(database)
    job_id = submit(cluster, urls=3, runs=2)
    assert publish_again(cluster, store, job_id) == 6
    cluster.start_workers(2, *STAND_IN, "--stand-in-delay", "0.3")
    wait_completed(store, job_id)
    assert settled_states(store, job_id) == {RunState.SUCCEEDED: 6}
    assert set(audits(cluster).values()) == {1}
    assert cluster.logs().count(COMPLETING) == 1
    assert (tmp_path / "reports" / job_id / "results.json").is_file()


def test_worker_killed_mid_run_run_settles_once(
    make_cluster: ClusterFactory, database: Database, redis_broker: str, tmp_path: Path
) -> None:
    cluster = make_cluster(database.url(), redis_broker, str(tmp_path / "reports"))
    store = open_store(database)
    doomed = cluster.launch(*STAND_IN, "--stand-in-delay", "4")
    survivor = cluster.launch(*STAND_IN, "--stand-in-delay", "0.5")
    cluster.wait_ready(doomed, survivor)
    job_id = submit(cluster, urls=2, runs=2)
    wait_for(lambda: "auditing" in doomed.text(), 30, "the first audit to start")
    doomed.kill()
    wait_completed(store, job_id)
    (killed_run,) = AUDITING.findall(doomed.text())
    assert settled_states(store, job_id) == {RunState.SUCCEEDED: 4}
    assert audits(cluster)[killed_run] == 2
    assert cluster.logs().count(COMPLETING) == 1


def test_redis_restart_loses_no_run(
    make_cluster: ClusterFactory, database: Database, tmp_path: Path
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    cluster = make_cluster(
        database.url(), redis.url, str(tmp_path / "reports"), LHFLEET_STALE_AFTER="3"
    )
    store = open_store(database)
    try:
        cluster.start_workers(2, *STAND_IN, "--stand-in-delay", "0.4")
        job_id = submit(cluster, urls=5, runs=4)
        wait_for(lambda: store.get_job(job_id).succeeded >= 4, 30, "a few runs")
        redis.stop()
        time.sleep(2)
        redis.start()
        wait_completed(store, job_id)
    finally:
        cluster.stop()
        redis.stop()
    assert settled_states(store, job_id) == {RunState.SUCCEEDED: 20}
    assert cluster.logs().count(COMPLETING) == 1


def test_database_outage_loses_no_outcome(
    make_cluster: ClusterFactory, database: Database, redis_broker: str, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    cluster = make_cluster(
        database.url(proxy.port), redis_broker, str(tmp_path / "reports")
    )
    store = open_store(database)
    try:
        cluster.start_worker(*STAND_IN, "--stand-in-delay", "0.4")
        job_id = submit(cluster, urls=4, runs=2)
        wait_for(lambda: store.get_job(job_id).succeeded >= 2, 30, "two runs")
        proxy.cut()
        time.sleep(4)
        proxy.restore()
        wait_completed(store, job_id)
    finally:
        cluster.stop()
        proxy.close()
    assert settled_states(store, job_id) == {RunState.SUCCEEDED: 8}
    assert "job store unreachable" in cluster.logs()
