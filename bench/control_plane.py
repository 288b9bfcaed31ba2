"""Control-plane benchmark of the Celery engine: throughput, exactness, store cost.

Part 1 (throughput) starts its own redis-server on a free loopback port, a
new PostgreSQL database on the local server, and ``--workers`` real
``lhfleet worker`` processes of ``--concurrency`` slots each. It stores one
job of ``--runs`` runs, publishes a task per run, and waits until the job
completes. Lighthouse is replaced by the audit stand-in (``lhfleet worker
--stand-in``), a fake that waits ``--delay`` seconds and returns a stored
report, because this measures the broker, the leases and the conditional
writes, not audits. It reports the settled runs per second, and checks that
no run was lost (every run settled), none duplicated (audited once) and the
job completed once.

Part 2 (store cost) times the job store's own work per run as the job grows
(``--sizes``). It times storing the job, leasing and recording runs as a
worker does (up to 1,000 runs spread over the job), reading the progress,
and building the results document.

It prints a Markdown section for BENCHMARKS.md. As recorded:

    .venv/bin/python bench/control_plane.py > control-plane.md

A smoke run:

    .venv/bin/python bench/control_plane.py --runs 200 --workers 2 --sizes 100,1000
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import sqlalchemy as sa

from lhfleet import engines, service
from lhfleet.dispatch.celery import submit as cluster_submit
from lhfleet.dispatch.celery.app import create_app
from lhfleet.dispatch.celery.config import ClusterConfig
from lhfleet.lhr import ReportFacts
from lhfleet.models import JobSecrets, JobSettings, JobState
from lhfleet.ports import JobStore
from lhfleet.results import results_document
from lhfleet.store.sql import SqlJobStore

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RUNS_PER_URL = 100
LEASE_SAMPLE = 1000
"""Runs leased and recorded per job size: spread over the job, timed one by one."""
SETTINGS = JobSettings(runs=RUNS_PER_URL, timeout=60, categories=("performance",))
AUDITING = re.compile(r"run (\S+) attempt \d+: auditing")
COMPLETING = "this worker settled its last run; completing it"
FACTS = ReportFacts(error_code=None, error_message=None, metrics={"fcp": 900.0})


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the job")
    parser.add_argument("--workers", type=int, default=8, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=1, help="slots each")
    parser.add_argument("--delay", type=float, default=0.05, help="stand-in seconds")
    parser.add_argument("--report", type=Path, help="stored Lighthouse JSON result")
    parser.add_argument("--sizes", default="100,1000,10000", help="store cost sizes")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait")
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Run a redis-server of the benchmark's own on a free loopback port."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(folder)]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait(lambda: reachable(port), 10)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


@contextmanager
def database() -> Iterator[str]:
    """Create a PostgreSQL database for the run, and drop it afterwards."""
    name = f"lhfleet_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def wait(condition: Callable[[], bool], timeout: float, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:g} s")
        time.sleep(step)


@dataclass
class Workers:
    """The benchmark's `lhfleet worker` processes and their logs."""

    processes: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def text(self) -> str:
        return "\n".join(log.read_text(errors="replace") for log in self.logs)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def start_workers(
    args: argparse.Namespace, env: dict[str, str], folder: Path
) -> Workers:
    options = ["--stand-in", "--stand-in-delay", str(args.delay), "--no-sweep"]
    options += ["--concurrency", str(args.concurrency)]
    if args.report:
        options += ["--stand-in-report", str(args.report)]
    processes, logs = [], []
    for number in range(args.workers):
        log = folder / f"worker{number}.log"
        command = [sys.executable, "-m", "lhfleet", "worker", *options]
        command += ["--data-dir", str(folder / f"worker{number}")]
        with log.open("wb") as handle:
            processes.append(
                subprocess.Popen(
                    command, stdout=handle, stderr=subprocess.STDOUT, env=env
                )
            )
        logs.append(log)
    workers = Workers(processes, logs)
    wait(lambda: workers.text().count(" ready.") >= args.workers, 180)
    return workers


@dataclass
class Throughput:
    runs: int
    create_seconds: float
    publish_seconds: float
    settle_seconds: float
    settled: int
    audited_twice: int
    never_audited: int
    completions: int

    @property
    def per_second(self) -> float:
        return self.settled / self.settle_seconds


def throughput(args: argparse.Namespace, folder: Path) -> Throughput:
    with redis_server(folder) as broker, database() as store_url:
        env = dict(os.environ, LHFLEET_STORE=store_url, LHFLEET_BROKER=broker)
        env.update(LHFLEET_REPORTS=str(folder / "reports"), LHFLEET_QUEUE="bench")
        env.update(LHFLEET_HOME=str(folder / "submitter"))
        workers = start_workers(args, env, folder)
        try:
            return measure_job(args, env, workers)
        finally:
            workers.stop()


def measure_job(
    args: argparse.Namespace, env: dict[str, str], workers: Workers
) -> Throughput:
    workspace = engines.open_workspace(engines.EngineSpec.resolve(environ=env))
    app = create_app(ClusterConfig.from_env(env))
    urls = [
        f"http://127.0.0.1:9/page{index}" for index in range(args.runs // RUNS_PER_URL)
    ]
    started = time.monotonic()
    job = service.submit(workspace, urls, SETTINGS, JobSecrets())
    created = time.monotonic()
    cluster_submit.submit(workspace, app, job, threading.Event())
    published = time.monotonic()

    def done() -> bool:
        return workspace.store.get_job(job.id).state is JobState.COMPLETED

    wait(done, args.timeout, step=0.5)
    settled = time.monotonic()
    time.sleep(2)
    return tally(
        workspace.store, job.id, workers.text(), (started, created, published, settled)
    )


def tally(
    store: JobStore, job_id: str, logs: str, times: tuple[float, ...]
) -> Throughput:
    started, created, published, settled = times
    job = store.get_job(job_id)
    audits = Counter(AUDITING.findall(logs))
    run_ids = [run.id for run in store.iter_runs(job_id)]
    return Throughput(
        runs=job.total,
        create_seconds=created - started,
        publish_seconds=published - created,
        settle_seconds=settled - created,
        settled=job.succeeded + job.failed,
        audited_twice=sum(1 for run in run_ids if audits[run] > 1),
        never_audited=sum(1 for run in run_ids if audits[run] == 0),
        completions=logs.count(COMPLETING),
    )


@dataclass
class StoreCost:
    runs: int
    create_ms: float
    lease_and_record_ms: float
    progress_ms: float
    results_ms: float


def store_cost(size: int, folder: Path) -> StoreCost:
    """Time the store's work per run for a job of ``size`` runs."""
    with database() as url:
        store = SqlJobStore(url)
        try:
            return measure_store(store, size, folder)
        finally:
            store.close()


def measure_store(store: SqlJobStore, size: int, folder: Path) -> StoreCost:
    urls = [f"http://127.0.0.1:9/page{index}" for index in range(size // RUNS_PER_URL)]
    started = time.perf_counter()
    job = store.create_job(SETTINGS, JobSecrets(), urls)
    create = (time.perf_counter() - started) / job.total
    run_ids = [run.id for run in store.iter_runs(job.id)]
    sample = run_ids[:: max(1, len(run_ids) // LEASE_SAMPLE)]
    started = time.perf_counter()
    for run_id in sample:
        store.get_job(job.id)
        store.claim(run_id, "bench", 300, time.time())
        store.record_success(run_id, "bench", FACTS, "r.json", "r.html", time.time())
    lease = (time.perf_counter() - started) / len(sample)
    polls = [timed(lambda: store.get_job(job.id)) for _ in range(20)]
    reports = engines.open_reports(
        engines.EngineSpec.resolve(data_dir=folder, environ={})
    )
    results = timed(lambda: results_document(store, reports, job.id)) / job.total
    return StoreCost(
        job.total, create * 1e3, lease * 1e3, median(polls) * 1e3, results * 1e3
    )


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def environment() -> list[str]:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    memory = re.search(r"MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text())
    redis = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    engine = sa.create_engine(PG_ADMIN)
    with engine.connect() as conn:
        postgres = conn.exec_driver_sql("SHOW server_version").scalar()
    engine.dispose()
    return [
        f"- CPU: {os.cpu_count()} × {cpu.group(1) if cpu else 'unknown'}",
        f"- memory: {int(memory.group(1)) // 1024 if memory else '?'} MiB",
        f"- load average (1 min) at the start: {os.getloadavg()[0]:.1f}",
        f"- Python {platform.python_version()}, PostgreSQL {postgres}, "
        f"Redis {redis[2].removeprefix('v=') if len(redis) > 2 else '?'}",
    ]


def report(
    args: argparse.Namespace,
    setting: list[str],
    result: Throughput,
    costs: list[StoreCost],
) -> str:
    lines = ["### Result", "", f"Command: `{' '.join(sys.argv)}`", ""]
    lines += setting
    lines += [f"- load average (1 min) at the end: {os.getloadavg()[0]:.1f}"]
    lines += ["", "| measure | value |", "|---|---|"]
    lines += [
        f"| runs | {result.runs:,} |",
        f"| worker processes | {args.workers} × {args.concurrency} slot(s) |",
        f"| stand-in audit | {args.delay:g} s |",
        f"| storing the job | {result.create_seconds:.1f} s |",
        f"| publishing the tasks | {result.publish_seconds:.1f} s |",
        f"| from stored to completed | {result.settle_seconds:.1f} s |",
        f"| settled runs per second | {result.per_second:.0f} |",
        f"| runs lost (never audited) | {result.never_audited} |",
        f"| runs audited more than once | {result.audited_twice} |",
        f"| completions | {result.completions} |",
    ]
    lines += ["", "| runs in the job | store job | lease + record | progress read "]
    lines[-1] += "| results document |"
    lines += ["|---|---|---|---|---|"]
    lines += [
        f"| {cost.runs:,} | {cost.create_ms:.3f} ms/run | "
        f"{cost.lease_and_record_ms:.2f} ms/run | {cost.progress_ms:.2f} ms | "
        f"{cost.results_ms:.3f} ms/run |"
        for cost in costs
    ]
    return "\n".join(lines)


def main() -> None:
    args = parse_args()
    setting = environment()
    with tempfile.TemporaryDirectory(prefix="lhfleet-bench-") as temp:
        folder = Path(temp)
        result = throughput(args, folder)
        sizes = [int(size) for size in args.sizes.split(",") if size]
        costs = [store_cost(size, folder) for size in sizes]
    print(report(args, setting, result, costs))


if __name__ == "__main__":
    main()
