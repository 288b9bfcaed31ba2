"""A Celery worker process of the cluster engine: its context, sweeper and start.

Each pool process builds its own context (database connections do not
survive a fork); the main process runs the sweeper in a thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from celery import signals

from lhfleet import service
from lhfleet.auditor import Auditor
from lhfleet.dispatch.celery import redisfix
from lhfleet.dispatch.celery.app import (
    COMPLETE_RETRY,
    COMPLETE_TASK,
    EngineApp,
    WorkerContext,
)
from lhfleet.dispatch.celery.delivery import Deliverer
from lhfleet.dispatch.celery.durable import DurableJobStore
from lhfleet.dispatch.celery.sweeper import Sweeper
from lhfleet.errors import BrokerError, InvalidSettingError
from lhfleet.owners import current_owner
from lhfleet.store.sql import SqlJobStore

logger = logging.getLogger(__name__)

POOLS = ("prefork", "threads", "solo")


@dataclass(frozen=True)
class WorkerOptions:
    """The Celery worker's pool size, pool type and log level."""

    concurrency: int
    pool: str = "prefork"
    loglevel: str = "INFO"

    def argv(self, queue: str) -> list[str]:
        return [
            "worker",
            f"--concurrency={self.concurrency}",
            f"--pool={self.pool}",
            f"--loglevel={self.loglevel}",
            f"--queues={queue}",
            f"--hostname=lhfleet-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]


def durable_workspace(
    workspace: service.Workspace, patience: float
) -> service.Workspace:
    """Return the workspace with its SQL store wrapped to wait out outages."""
    if not isinstance(workspace.store, SqlJobStore):
        raise InvalidSettingError(
            "The cluster engine needs the SQL job store (--store postgresql://... "
            "or sqlite:///...)."
        )
    store = DurableJobStore(workspace.store, patience)
    return service.Workspace(
        workspace.data_dir, store, workspace.reports, workspace.scratch
    )


def build_context(
    engine: EngineApp,
    open_workspace: Callable[[], service.Workspace],
    make_auditor: Callable[[Path], Auditor],
) -> WorkerContext:
    """Build one process's job store, report store, auditor and deliverer."""
    workspace = durable_workspace(open_workspace(), engine.config.store_patience)
    assert isinstance(workspace.store, DurableJobStore)

    def complete(job_id: str) -> None:
        service.complete(workspace, job_id)

    deliverer = Deliverer(
        store=workspace.store,
        reports=workspace.reports,
        auditor=make_auditor(workspace.scratch),
        config=engine.config,
        owner=lambda: current_owner("celery"),
        on_complete=lambda job_id: complete_or_defer(engine, complete, job_id),
    )
    logger.info("worker process %d ready", os.getpid())
    return WorkerContext(deliverer=deliverer, complete=complete)


def complete_or_defer(
    engine: EngineApp, complete: Callable[[str], None], job_id: str
) -> None:
    """Write the results of the job whose last run this worker settled.

    Logs instead of raising when the results cannot be written, because the
    run is recorded already. A ``complete_job`` task writes them later.
    """
    logger.info("job %s: this worker settled its last run; completing it", job_id)
    try:
        complete(job_id)
    except Exception:
        logger.exception(
            "job %s: writing its results failed; trying again in %g s",
            job_id,
            COMPLETE_RETRY,
        )
        try:
            engine.publish(COMPLETE_TASK, job_id, COMPLETE_RETRY)
        except BrokerError as error:
            logger.error(
                "job %s: %s. Its results are written by the next "
                "`lhfleet resume %s --engine celery`.",
                job_id,
                error,
                job_id,
            )


class SweeperThread:
    """Runs the sweeper beside the worker's main process, started when it is ready."""

    def __init__(self, make_sweeper: Callable[[], Sweeper]) -> None:
        self.make_sweeper = make_sweeper
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def connect(self) -> None:
        signals.worker_ready.connect(self._start, weak=False)
        signals.worker_shutdown.connect(self._stop, weak=False)

    def _start(self, **_: Any) -> None:
        sweeper = self.make_sweeper()
        self.thread = threading.Thread(
            target=sweeper.run_forever,
            args=(self.stop,),
            name="lhfleet-sweeper",
            daemon=True,
        )
        self.thread.start()

    def _stop(self, **_: Any) -> None:
        self.stop.set()


def start_worker(
    engine: EngineApp, options: WorkerOptions, sweeper: SweeperThread | None
) -> NoReturn:
    """Run the Celery worker in this process until it is stopped."""
    if options.pool not in POOLS:
        raise InvalidSettingError(
            f"--pool is {options.pool!r}; use one of {', '.join(POOLS)}."
        )
    if sweeper is not None:
        sweeper.connect()
    if engine.config.broker.startswith("redis"):
        redisfix.install()
    logger.info(
        "worker starting: queue %s on %s, %d processes",
        engine.config.queue,
        engine.config.broker_display,
        options.concurrency,
    )
    engine.celery.worker_main(options.argv(engine.config.queue))
