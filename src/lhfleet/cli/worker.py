"""``lhfleet worker``, and running ``lhfleet run``/``resume`` on the Celery engine.

A worker is a Celery worker that audits the runs published to its queue.
``lhfleet run --engine celery`` stores the job and publishes one task per
run. It shows the same progress bar as the local engine by reading the job
store, and prints the same results document.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lhfleet import codes, engines, service
from lhfleet import console as views
from lhfleet.auditor import Auditor, sweep_scratch
from lhfleet.cli.common import (
    DriveOptions,
    data_dir_option,
    fixed_slots,
    handle_errors,
    parse_concurrency,
    stderr,
    stdout,
)
from lhfleet.errors import (
    InvalidSettingError,
    JobDeadlineError,
    JobInterrupted,
    StoreError,
)
from lhfleet.guard_auditor import GuardedAuditor
from lhfleet.hooks import HookSpec
from lhfleet.models import JobSecrets, JobSettings, JobState, Target
from lhfleet.owners import is_gone
from lhfleet.results import digest_results, write_results_json
from lhfleet.runtime import find_runtime

if TYPE_CHECKING:
    from lhfleet.dispatch.celery.app import EngineApp

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
STORE_WAIT = 2.0
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class EngineOptions:
    """--engine, --store, --reports, --broker and --detach of a command."""

    engine: str | None
    store: str | None
    reports: str | None
    broker: str | None
    detach: bool = False

    def spec(self, data_dir: Path | None) -> engines.EngineSpec:
        spec = engines.EngineSpec.resolve(
            self.engine, self.store, self.reports, self.broker, data_dir
        )
        if self.detach and not spec.distributed:
            raise InvalidSettingError(
                "--detach needs --engine celery: the local engine runs the job "
                "in this process."
            )
        return spec


ENGINE_OPTIONS = [
    click.option(
        "--engine",
        type=click.Choice(engines.ENGINES),
        default=None,
        help="Where runs are audited: local (here) or celery (lhfleet workers) "
        "[default: lhfleet.toml's engine, $LHFLEET_ENGINE or local].",
    ),
    click.option(
        "--store",
        default=None,
        help="Job store: postgresql://USER@HOST/DB or a SQLite file "
        "[default: $LHFLEET_STORE or the data directory's].",
    ),
    click.option(
        "--reports",
        default=None,
        help="Report store: s3://BUCKET/PREFIX or a folder "
        "[default: $LHFLEET_REPORTS or the data directory's].",
    ),
    click.option(
        "--broker",
        default=None,
        help="Celery broker URL, Redis or RabbitMQ "
        "[default: $LHFLEET_BROKER or redis://127.0.0.1:6379/0].",
    ),
    click.option(
        "--detach",
        is_flag=True,
        help="With --engine celery: publish the runs, print the job id and "
        "exit without waiting.",
    ),
]


def engine_options(command: F) -> F:
    """Add the engine's options to a command, passed on as ``engine``."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        engine: str | None,
        store: str | None,
        reports: str | None,
        broker: str | None,
        detach: bool,
        **kwargs: Any,
    ) -> Any:
        chosen = EngineOptions(engine, store, reports, broker, detach)
        return command(*args, engine=chosen, **kwargs)

    decorated: Any = wrapper
    for option in reversed(ENGINE_OPTIONS):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def run_on_cluster(
    engine: EngineOptions,
    drive: DriveOptions,
    targets: Iterable[Target],
    settings: JobSettings,
    secrets: JobSecrets,
    hooks: Sequence[HookSpec] = (),
) -> None:
    """Store a job, publish its runs to the workers and follow it to the end."""
    spec = engine.spec(drive.data_dir)
    app = engines.cluster_app(spec)
    app.config.check_settings(settings)
    workspace = engines.open_workspace(spec)
    job = service.submit(workspace, targets, settings, secrets, hooks)
    stderr.print(
        f"Job [bold]{job.id}[/bold]: {job.total} runs ({settings.runs} per URL), "
        f"published to queue {app.config.queue} on {app.config.broker_display}"
    )
    _publish_and_follow(workspace, app, job.id, drive, engine.detach)


def resume_on_cluster(engine: EngineOptions, drive: DriveOptions, job_id: str) -> None:
    """Publish a job's unsettled runs again and follow it to the end."""
    spec = engine.spec(drive.data_dir)
    app = engines.cluster_app(spec)
    workspace = engines.open_workspace(spec)
    job = workspace.store.get_job(job_id)
    stderr.print(f"Job [bold]{job_id}[/bold]: {job.pending} runs unsettled")
    _publish_and_follow(workspace, app, job_id, drive, engine.detach)


def _publish_and_follow(
    workspace: service.Workspace,
    app: EngineApp,
    job_id: str,
    drive: DriveOptions,
    detach: bool,
) -> None:
    from lhfleet.dispatch.celery import submit  # noqa: PLC0415 - needs Celery

    stop = threading.Event()
    job = workspace.store.get_job(job_id)
    with _stop_on_signals(stop):
        submit.submit(workspace, app, job, stop)
    if detach:
        stdout.print(job_id)
        stderr.print(f"Follow it with `lhfleet resume {job_id} --engine celery`.")
        return
    sweeper = submit.make_sweeper(app, workspace.store)
    deadline = _follow(workspace, job_id, drive, stop, submit.follow, sweeper)
    _finish(workspace, job_id, drive, deadline)


def _follow(
    workspace: service.Workspace,
    job_id: str,
    drive: DriveOptions,
    stop: threading.Event,
    follow: Callable[..., Any],
    sweeper: Any,
) -> bool:
    """Show the progress bar until the job is done or stopped; True on deadline."""
    deadline = threading.Event()

    def out_of_time() -> None:
        deadline.set()
        stop.set()

    timer = threading.Timer(drive.max_duration or 0, out_of_time)
    watcher = threading.Thread(
        target=follow,
        args=(workspace, job_id, stop, sweeper),
        name="lhfleet-follow",
        daemon=True,
    )
    with _stop_on_signals(stop):
        watcher.start()
        if drive.max_duration:
            timer.start()
        views.watch(stderr, lambda: workspace.store.get_job(job_id), watcher)
    timer.cancel()
    return deadline.is_set()


def _finish(
    workspace: service.Workspace, job_id: str, drive: DriveOptions, deadline: bool
) -> None:
    if deadline and drive.max_duration:
        failed = service.end_for_deadline(workspace, job_id, drive.max_duration)
        print_results(workspace, job_id, drive.as_json, exit_on_missing=False)
        raise JobDeadlineError(
            f"Job {job_id} reached its --max-duration of {drive.max_duration:g} s; "
            f"{failed} queued runs were marked {codes.JOB_DEADLINE}, and runs that "
            f"workers hold finish there. Run the failed ones again with "
            f"`lhfleet retry {job_id} --engine celery`."
        )
    job = workspace.store.get_job(job_id)
    if job.state is not JobState.COMPLETED:
        raise JobInterrupted(
            f"Stopped following job {job_id} with {job.pending} of {job.total} runs "
            "unsettled; the workers go on with them. Follow it again with "
            f"`lhfleet resume {job_id} --engine celery`."
        )
    print_results(workspace, job_id, drive.as_json)


def print_results(
    workspace: service.Workspace,
    job_id: str,
    as_json: bool,
    exit_on_missing: bool = True,
) -> None:
    """Print the results table (or JSON) and exit 1 when a URL has no valid run."""
    if as_json:
        digest = write_results_json(
            workspace.store, workspace.reports, job_id, sys.stdout
        )
    else:
        digest, entries = digest_results(workspace.store, workspace.reports, job_id)
        for table in views.results_tables(digest.job, entries):
            stdout.print(table)
        where = workspace.reports.locate(f"{job_id}/results.json")
        stdout.print(f"Results: {where}")
    missing = digest.missing
    if missing and exit_on_missing:
        stderr.print(
            f"[red]{len(missing)} URLs have no valid run[/red]; "
            f"see `lhfleet results {job_id} --failed`."
        )
        sys.exit(1)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGINT and SIGTERM inside the block."""

    def handle(number: int, _frame: Any) -> None:
        stop.set()

    previous = {
        number: signal.signal(number, handle)
        for number in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@click.command()
@click.option(
    "--broker",
    default=None,
    help="Celery broker URL [default: $LHFLEET_BROKER or redis://127.0.0.1:6379/0].",
)
@click.option(
    "--store",
    default=None,
    help="Job store URL, the same as the submitters' [default: $LHFLEET_STORE].",
)
@click.option(
    "--reports",
    default=None,
    help="Report store: s3://BUCKET/PREFIX or a folder [default: $LHFLEET_REPORTS].",
)
@click.option(
    "--queue",
    default=None,
    help="Queue to take runs from [default: $LHFLEET_QUEUE or lhfleet].",
)
@click.option(
    "--concurrency",
    default="auto",
    show_default=True,
    help="Audits at once: a number, or auto (one per two cores).",
)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    default="prefork",
    show_default=True,
    help="Celery pool: one process per audit slot (prefork), threads, or solo.",
)
@click.option(
    "--loglevel",
    type=click.Choice(LOG_LEVELS, case_sensitive=False),
    default="INFO",
    show_default=True,
    help="Log level of the worker's log on stderr.",
)
@click.option(
    "--sweep/--no-sweep",
    default=True,
    show_default=True,
    help="Publish again, now and then, runs whose task was lost.",
)
@click.option(
    "--stand-in",
    is_flag=True,
    hidden=True,
    help="Replace Lighthouse by the audit stand-in (tests and benchmarks only).",
)
@click.option(
    "--stand-in-report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    hidden=True,
)
@click.option("--stand-in-delay", type=float, default=0.05, hidden=True)
@data_dir_option
@handle_errors
def worker(
    broker: str | None,
    store: str | None,
    reports: str | None,
    queue: str | None,
    concurrency: str,
    pool: str,
    loglevel: str,
    sweep: bool,
    stand_in: bool,
    stand_in_report: Path | None,
    stand_in_delay: float,
    data_dir: Path | None,
) -> None:
    """Audit the runs that `lhfleet run --engine celery` publishes, until stopped."""
    from lhfleet.dispatch.celery import worker as celery_worker  # noqa: PLC0415

    _log_at(loglevel.upper())
    spec = engines.EngineSpec.resolve("celery", store, reports, broker, data_dir)
    app = engines.cluster_app(spec, queue)
    workspace = _open_patiently(spec, app.config.store_patience)
    make_auditor = _auditor_factory(
        stand_in or stand_in_report is not None, stand_in_report, stand_in_delay
    )
    swept = sweep_scratch(workspace.scratch, is_gone)
    if swept:
        logger.info("removed %d work folders of exited workers", swept)
    app.context_factory = lambda: celery_worker.build_context(
        app, lambda: engines.open_workspace(spec), make_auditor
    )
    sweeper = _sweeper_thread(app, workspace) if sweep else None
    options = celery_worker.WorkerOptions(
        fixed_slots(parse_concurrency(concurrency)), pool, loglevel.upper()
    )
    celery_worker.start_worker(app, options, sweeper)


def _sweeper_thread(app: EngineApp, workspace: service.Workspace) -> Any:
    from lhfleet.dispatch.celery.submit import make_sweeper  # noqa: PLC0415
    from lhfleet.dispatch.celery.worker import SweeperThread  # noqa: PLC0415

    if app.config.sweep_interval <= 0:
        return None
    return SweeperThread(lambda: make_sweeper(app, workspace.store))


def _auditor_factory(
    stand_in: bool, report: Path | None, delay: float
) -> Callable[[Path], Auditor]:
    if stand_in:
        from lhfleet.dispatch.celery import standin  # noqa: PLC0415

        stored = standin.load_report(report)
        logger.warning(
            "audits are replaced by the audit stand-in (a fake: %.2f s, then a "
            "stored report); use this for tests and benchmarks only",
            delay,
        )
        return lambda _scratch: standin.StandInAuditor(stored, delay)
    runtime = find_runtime()
    return lambda scratch: GuardedAuditor(Auditor(runtime, scratch))


def _open_patiently(spec: engines.EngineSpec, patience: float) -> service.Workspace:
    """Open the job store, waiting up to ``patience`` s for the database to start."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return engines.open_workspace(spec)
        except StoreError as error:
            if time.monotonic() >= deadline:
                raise
            logger.warning("job store not ready, trying again: %s", error)
            time.sleep(STORE_WAIT)


def _log_at(level: str) -> None:
    """Leave the log to Celery, which names the process of every line.

    The lhfleet lines reach Celery's handler on the root logger; the
    command's own stderr handler would print each of them twice.
    """
    root = logging.getLogger("lhfleet")
    for handler in list(root.handlers):
        if not isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
