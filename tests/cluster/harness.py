"""Real services for the cluster tests: databases, Redis servers, worker processes."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
SHARED_REDIS = "redis://127.0.0.1:6379/0"
SHARED_RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
LHFLEET = (sys.executable, "-m", "lhfleet")
READY_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, step: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


class Database:
    """A fresh PostgreSQL database on the shared server, dropped at the end."""

    def __init__(self, port: int = 5432) -> None:
        self.name = f"lhfleet_cluster_{uuid.uuid4().hex[:12]}"
        self.admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        self.port = port

    def url(self, port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{self.name}"

    def drop(self) -> None:
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self.admin.dispose()


class RedisServer:
    """A redis-server of the test's own, on a free port, that it may restart."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.folder),
        ]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for(lambda: reachable("127.0.0.1", self.port), 10, "redis-server")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class Worker:
    """One `lhfleet worker` process, in its own session so a test can kill it all."""

    process: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"the worker exited early:\n{self.text()}")
        return " ready." in self.text()

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class Cluster:
    """The environment every worker and submitter of one test shares."""

    folder: Path
    env: dict[str, str]
    workers: list[Worker] = field(default_factory=list)

    def start_worker(self, *options: str) -> Worker:
        (worker,) = self.start_workers(1, *options)
        return worker

    def start_workers(self, count: int, *options: str) -> list[Worker]:
        """Start ``count`` workers at once and wait until each is ready."""
        started = [self.launch(*options) for _ in range(count)]
        self.wait_ready(*started)
        return started

    def launch(self, *options: str) -> Worker:
        """Start a worker without waiting for it."""
        name = f"worker{len(self.workers) + 1}"
        log = self.folder / f"{name}.log"
        with log.open("wb") as handle:
            process = subprocess.Popen(
                [*LHFLEET, "worker", "--data-dir", str(self.folder / name), *options],
                stdout=handle,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        worker = Worker(process, log)
        self.workers.append(worker)
        return worker

    def wait_ready(self, *workers: Worker) -> None:
        for worker in workers:
            wait_for(
                functools.partial(worker.ready),
                READY_TIMEOUT,
                f"the worker logging to {worker.log} to start",
            )

    def logs(self) -> str:
        return "\n".join(worker.text() for worker in self.workers)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


class ClusterFactory(Protocol):
    """Builds a Cluster on a job store, a broker and a report store."""

    def __call__(
        self, store: str, broker: str, reports: str, **extra: str
    ) -> Cluster: ...


def cluster_env(
    folder: Path, store: str, broker: str, reports: str, **extra: str
) -> dict[str, str]:
    """Return the environment of a test's workers and submitters."""
    env = dict(os.environ)
    env.update(
        LHFLEET_STORE=store,
        LHFLEET_BROKER=broker,
        LHFLEET_REPORTS=reports,
        LHFLEET_QUEUE=f"lhfleet-test-{uuid.uuid4().hex[:10]}",
        LHFLEET_HOME=str(folder / "submitter"),
        LHFLEET_VISIBILITY_TIMEOUT="30",
        LHFLEET_LEASE_MARGIN="2",
        LHFLEET_SWEEP_INTERVAL="2",
        LHFLEET_STORE_PATIENCE="120",
    )
    env.update(extra)
    return env
