"""The Celery application of the cluster engine: its settings, tasks and publishing.

Two tasks exist. ``lhfleet.audit_run(run_id)`` delivers one run (see
``delivery``); ``lhfleet.complete_job(job_id)`` writes a job's results when
the worker that settled its last run could not. Both acknowledge late, so
a task whose worker dies is delivered again. Both schedule their own
retries by publishing a new message with a countdown before acknowledging
the old one. If that publish fails, the old message goes back to the queue.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, Task
from celery.exceptions import Reject
from kombu.exceptions import KombuError
from kombu.exceptions import OperationalError as KombuOperationalError

from lhfleet.dispatch.celery.config import ClusterConfig
from lhfleet.dispatch.celery.delivery import Deliverer
from lhfleet.errors import BrokerError, LhfleetError

logger = logging.getLogger(__name__)

AUDIT_TASK = "lhfleet.audit_run"
COMPLETE_TASK = "lhfleet.complete_job"
COMPLETE_RETRY = 30.0
PUBLISH_RETRY_POLICY = {
    "max_retries": 12,
    "interval_start": 0.2,
    "interval_step": 1.0,
    "interval_max": 5.0,
}
BROKER_ERRORS = (KombuError, KombuOperationalError, OSError)


@dataclass
class WorkerContext:
    """The deliverer and completion function of one worker process."""

    deliverer: Deliverer
    complete: Callable[[str], None]
    """Write a job's results document; raises when it cannot."""


@dataclass
class EngineApp:
    """A Celery app with the cluster's settings and a per-process worker context."""

    config: ClusterConfig
    celery: Celery
    context_factory: Callable[[], WorkerContext] | None = None
    _contexts: dict[int, WorkerContext] = field(default_factory=dict)

    def context(self) -> WorkerContext:
        """Return this process's context; a forked pool child builds its own."""
        pid = os.getpid()
        if pid not in self._contexts:
            if self.context_factory is None:
                raise RuntimeError("this lhfleet Celery app was not built for a worker")
            self._contexts.clear()
            self._contexts[pid] = self.context_factory()
        return self._contexts[pid]

    def publish(self, name: str, argument: str, countdown: float | None = None) -> None:
        """Publish one task, retrying while the broker is unreachable."""
        try:
            self.celery.send_task(
                name,
                args=(argument,),
                queue=self.config.queue,
                countdown=countdown,
                retry=True,
                retry_policy=PUBLISH_RETRY_POLICY,
            )
        except BROKER_ERRORS as error:
            raise self.broker_error(f"publish {name}({argument})", error) from error

    def publish_runs(
        self,
        run_ids: Iterable[str],
        stop: Callable[[], bool],
        job_id: str = "JOB",
    ) -> int:
        """Publish one audit task per run over one connection; return how many."""
        count = 0
        try:
            with self.celery.producer_or_acquire() as producer:
                for run_id in run_ids:
                    if stop():
                        break
                    self.celery.send_task(
                        AUDIT_TASK,
                        args=(run_id,),
                        queue=self.config.queue,
                        producer=producer,
                        retry=True,
                        retry_policy=PUBLISH_RETRY_POLICY,
                    )
                    count += 1
        except BROKER_ERRORS as error:
            action = f"publish the runs of job {job_id} ({count} were published)"
            raise self.broker_error(action, error, job_id) from error
        return count

    def broker_error(
        self, action: str, error: BaseException, job_id: str = "JOB"
    ) -> BrokerError:
        reason = str(error).rstrip(". ")
        return BrokerError(
            f"Could not {action} to the broker {self.config.broker_display}: "
            f"{type(error).__name__}: {reason}. Start the broker or fix --broker "
            f"(LHFLEET_BROKER), then run `lhfleet resume {job_id} --engine celery` "
            "to publish the job's unsettled runs again; settled runs are not redone."
        )


def create_app(
    config: ClusterConfig,
    context_factory: Callable[[], WorkerContext] | None = None,
) -> EngineApp:
    """Return the cluster's Celery app; workers pass how to build their context."""
    celery = Celery("lhfleet", set_as_current=False)
    celery.conf.update(celery_settings(config))
    engine = EngineApp(config, celery, context_factory)
    _register(engine)
    return engine


def celery_settings(config: ClusterConfig) -> dict[str, Any]:
    """Return Celery's settings: late acknowledgement, one task at a time each."""
    settings: dict[str, Any] = {
        "broker_url": config.broker,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "task_default_queue": config.queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_publish_retry": True,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
    }
    if config.broker.startswith("redis"):
        settings["broker_transport_options"] = {
            "visibility_timeout": config.visibility_timeout
        }
    return settings


def _register(engine: EngineApp) -> None:
    @engine.celery.task(name=AUDIT_TASK, bind=True, max_retries=None)
    def audit_run(task: Task[Any, Any], run_id: str) -> str:
        outcome = engine.context().deliverer.deliver(run_id)
        if outcome.retry_in is not None:
            _reschedule(engine, task, AUDIT_TASK, run_id, outcome.retry_in)
        return outcome.action

    @engine.celery.task(name=COMPLETE_TASK, bind=True, max_retries=None)
    def complete_job(task: Task[Any, Any], job_id: str) -> str:
        try:
            engine.context().complete(job_id)
        except LhfleetError as error:
            logger.error("job %s: writing its results failed: %s", job_id, error)
            _reschedule(engine, task, COMPLETE_TASK, job_id, COMPLETE_RETRY)
            return "retrying"
        return "completed"


def _reschedule(
    engine: EngineApp, task: Task[Any, Any], name: str, argument: str, delay: float
) -> None:
    """Publish the task again in ``delay`` s; on failure, requeue this delivery."""
    countdown = min(delay, engine.config.visibility_timeout / 2)
    try:
        engine.publish(name, argument, countdown)
    except BrokerError as error:
        logger.error(
            "%s(%s): %s; returning the task to its queue", name, argument, error
        )
        raise Reject(str(error), requeue=True) from error
    logger.debug("%s(%s): published again, due in %.1f s", name, argument, countdown)
