"""Commands that run a job's runs here: run, resume, retry; and prune."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from lhfleet import codes, service
from lhfleet import console as views
from lhfleet import estimate as estimates
from lhfleet.cli.analyze import RUNS, AnalysisOptions, analysis_options, config_option
from lhfleet.cli.common import (
    EXIT_HELP,
    DriveOptions,
    data_dir_option,
    drive_options,
    handle_errors,
    open_workspace,
    parse_age,
    stderr,
    stdout,
)
from lhfleet.cli.input_options import (
    InputOptions,
    gather_plan,
    guard_settings,
    input_options,
    print_plan,
)
from lhfleet.cli.worker import (
    EngineOptions,
    engine_options,
    resume_on_cluster,
    run_on_cluster,
)
from lhfleet.errors import (
    InvalidSettingError,
    JobDeadlineError,
    JobInterrupted,
)
from lhfleet.hooks import parse_hook_option
from lhfleet.inputs import SourceLine, read_lines, validated
from lhfleet.models import CATEGORIES, PRESETS, JobSecrets, JobSettings, JobState
from lhfleet.results import digest_results, write_results_json
from lhfleet.runtime import Runtime, find_runtime

logger = logging.getLogger(__name__)


def parse_extra_headers(value: str | None) -> dict[str, str]:
    """Read headers from a JSON object or a file holding one."""
    if not value:
        return {}
    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except OSError as error:
            raise InvalidSettingError(
                f"--extra-headers is neither a JSON object nor a readable file "
                f'({error.strerror}). Pass \'{{"Name": "value"}}\' or a file path.'
            ) from error
    try:
        headers = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidSettingError(
            f"--extra-headers is not valid JSON ({error.msg} at position {error.pos}). "
            'Pass an object such as \'{"Cookie": "a=b"}\'.'
        ) from error
    if not isinstance(headers, dict) or not all(
        isinstance(key, str) and isinstance(item, str) for key, item in headers.items()
    ):
        raise InvalidSettingError(
            "--extra-headers must be a JSON object of header names to string values."
        )
    return headers


def gather_urls(urls: tuple[str, ...], input_file: str | None) -> list[str]:
    lines: list[SourceLine] = [
        SourceLine("argument", number, text.strip())
        for number, text in enumerate(urls, start=1)
        if text.strip()
    ]
    if input_file == "-":
        lines += read_lines("stdin", sys.stdin)
    elif input_file:
        try:
            with open(input_file, encoding="utf-8-sig", newline=None) as handle:
                lines += read_lines(input_file, handle)
        except OSError as error:
            raise InvalidSettingError(
                f"Cannot read the URL list {input_file}: {error.strerror}."
            ) from error
        except UnicodeDecodeError as error:
            raise InvalidSettingError(
                f"The URL list {input_file} is not UTF-8 text ({error.reason} at "
                f"byte {error.start}). Save it as UTF-8."
            ) from error
    return validated(lines)


@click.command(epilog=EXIT_HELP)
@handle_errors
@click.argument("urls", nargs=-1)
@click.option(
    "-i",
    "--input",
    "input_file",
    help="Read URLs from a file ('-' for stdin): one per line, CSV or JSON.",
)
@click.option(
    "--runs",
    type=RUNS,
    default="3",
    show_default=True,
    help="Runs per URL, or auto: from --min-runs until --target-spread is met, "
    "at most --max-runs.",
)
@click.option(
    "--preset",
    type=click.Choice(PRESETS),
    default="mobile",
    show_default=True,
    help="Lighthouse's emulation preset.",
)
@click.option(
    "--categories",
    default=",".join(CATEGORIES),
    show_default=True,
    help="Comma-separated Lighthouse categories.",
)
@click.option(
    "--timeout",
    default=120.0,
    show_default=True,
    help="Seconds one run may take before it is stopped.",
)
@click.option(
    "--retries",
    default=2,
    show_default=True,
    help="Extra attempts for a run that fails for a transient reason.",
)
@click.option("--chrome-flags", default="", help="Extra Chrome flags, space-separated.")
@click.option(
    "--extra-headers",
    default=None,
    help="HTTP headers for every request: a JSON object or a file. "
    "Never stored in results.",
)
@click.option(
    "--ignore-certificate-errors",
    is_flag=True,
    help="Accept invalid HTTPS certificates (self-signed test servers); "
    "recorded in the job's settings.",
)
@click.option(
    "--strip-screenshots",
    is_flag=True,
    help="Leave the embedded screenshots out of the stored JSON reports.",
)
@click.option(
    "--hook",
    "hooks",
    multiple=True,
    help="A hook to fire once when the job completes: webhook:URL, "
    "command:COMMAND, python:MODULE:FUNCTION or a JSON object; repeat for more.",
)
@input_options
@analysis_options
@config_option
@drive_options
@engine_options
def run(
    urls: tuple[str, ...],
    input_file: str | None,
    runs: int | str,
    preset: str,
    categories: str,
    timeout: float,
    retries: int,
    chrome_flags: str,
    extra_headers: str | None,
    ignore_certificate_errors: bool,
    strip_screenshots: bool,
    hooks: tuple[str, ...],
    analysis: AnalysisOptions,
    drive: DriveOptions,
    inputs: InputOptions,
    engine: EngineOptions,
) -> None:
    """Audit URLS (and those in --input), RUNS times each, and keep every report."""
    settings = JobSettings(
        runs=1,
        preset=preset,
        categories=tuple(
            part.strip() for part in categories.split(",") if part.strip()
        ),
        timeout=timeout,
        chrome_flags=tuple(chrome_flags.split()),
        retries=retries,
        ignore_certificate_errors=ignore_certificate_errors,
        strip_screenshots=strip_screenshots,
    )
    settings = analysis.apply(settings, runs)
    service.validate_settings(settings)
    hook_specs = [parse_hook_option(text) for text in hooks]
    headers = inputs.headers(parse_extra_headers(extra_headers))
    secrets = JobSecrets(extra_headers=headers, login_script=inputs.login())
    plan = gather_plan(urls, input_file, inputs, headers, settings)
    if inputs.dry_run:
        print_plan(plan, drive.as_json)
        data_dir = (drive.data_dir or service.default_data_dir()).expanduser()
        figures = estimates.load_figures(data_dir, settings.preset)
        total = len(plan.entries) * settings.runs
        guess = estimates.estimate(total, drive.slots, figures)
        stderr.print(guess.describe(total))
        return
    settings = guard_settings(settings, inputs)
    if engine.spec(drive.data_dir).distributed:
        run_on_cluster(engine, drive, plan.targets, settings, secrets, hook_specs)
        return
    runtime = find_runtime()
    workspace = open_workspace(drive.data_dir, engine.spec(drive.data_dir))
    settings = analysis.with_host(settings, workspace, runtime)
    job = service.submit(workspace, plan.targets, settings, secrets, hook_specs)
    stderr.print(
        f"Job [bold]{job.id}[/bold]: {len(plan.entries)} URLs × {runs} runs = "
        f"{job.total} runs, {service.describe_slots(drive.slots)}"
    )
    _drive_and_report(workspace, job.id, drive, runtime)
    analysis.check(workspace, job.id)


@click.command(epilog=EXIT_HELP)
@handle_errors
@click.argument("job_id")
@drive_options
@engine_options
def resume(job_id: str, drive: DriveOptions, engine: EngineOptions) -> None:
    """Finish a job that was interrupted, without redoing settled runs."""
    if engine.spec(drive.data_dir).distributed:
        resume_on_cluster(engine, drive, job_id)
        return
    workspace = open_workspace(drive.data_dir, engine.spec(drive.data_dir))
    workspace.store.get_job(job_id)
    _drive_and_report(workspace, job_id, drive, find_runtime())


@click.command(epilog=EXIT_HELP)
@handle_errors
@click.argument("job_id")
@drive_options
@engine_options
def retry(job_id: str, drive: DriveOptions, engine: EngineOptions) -> None:
    """Run a job's failed runs (its dead letters) again, with fresh attempts."""
    workspace = open_workspace(drive.data_dir, engine.spec(drive.data_dir))
    workspace.store.get_job(job_id)
    runtime = None if engine.spec(drive.data_dir).distributed else find_runtime()
    count = service.retry_failed(workspace, job_id)
    stderr.print(f"Queued {count} failed runs of job {job_id} again.")
    if runtime is None:
        resume_on_cluster(engine, drive, job_id)
        return
    _drive_and_report(workspace, job_id, drive, runtime)


def _drive_and_report(
    workspace: service.Workspace, job_id: str, drive: DriveOptions, runtime: Runtime
) -> None:
    stop = threading.Event()
    deadline = threading.Event()
    outcome: dict[str, BaseException] = {}

    def target() -> None:
        try:
            service.drive(workspace, job_id, drive.slots, stop, runtime)
        except BaseException as error:  # noqa: BLE001 - re-raised in the main thread
            outcome["error"] = error

    def out_of_time() -> None:
        deadline.set()
        stop.set()

    timer = threading.Timer(drive.max_duration or 0, out_of_time)
    worker = threading.Thread(target=target, name="lhfleet-driver", daemon=True)
    with _stop_on_signals(stop):
        worker.start()
        if drive.max_duration:
            timer.start()
        try:
            views.watch(stderr, lambda: workspace.store.get_job(job_id), worker)
        except OSError as error:
            # The reader of stderr went away: stop the audits as for Ctrl-C.
            logger.warning(
                "job %s: progress output failed (%s); stopping", job_id, error
            )
            stop.set()
        except BaseException:
            stop.set()
            _join(worker)
            raise
        _join(worker)
    timer.cancel()
    if "error" in outcome:
        raise outcome["error"]
    if deadline.is_set() and drive.max_duration:
        failed = service.end_for_deadline(workspace, job_id, drive.max_duration)
        _print_results(workspace, job_id, drive.as_json, exit_on_missing=False)
        raise JobDeadlineError(
            f"Job {job_id} reached its --max-duration of {drive.max_duration:g} s; "
            f"{failed} unfinished runs were marked {codes.JOB_DEADLINE} and every "
            f"finished result is saved. Run them with `lhfleet retry {job_id}`."
        )
    job = workspace.store.get_job(job_id)
    if job.state is not JobState.COMPLETED:
        raise JobInterrupted(
            f"Job {job_id} stopped with {job.pending} of {job.total} runs unsettled; "
            f"every settled run is saved. Finish it with `lhfleet resume {job_id}`."
        )
    _print_results(workspace, job_id, drive.as_json)


@click.command()
@click.option(
    "--older-than",
    required=True,
    help="Age of the jobs to delete, such as 30d, 12h or 90m.",
)
@data_dir_option
@handle_errors
def prune(older_than: str, data_dir: Path | None) -> None:
    """Delete jobs older than an age, with their reports."""
    seconds = parse_age(older_than)
    workspace = open_workspace(data_dir)
    removed = service.prune(workspace, seconds)
    stdout.print(f"Deleted {len(removed)} jobs created more than {older_than} ago.")


def _print_results(
    workspace: service.Workspace,
    job_id: str,
    as_json: bool,
    exit_on_missing: bool = True,
) -> None:
    if as_json:
        digest = write_results_json(
            workspace.store, workspace.reports, job_id, sys.stdout
        )
    else:
        digest, entries = digest_results(workspace.store, workspace.reports, job_id)
        for table in views.results_tables(digest.job, entries):
            stdout.print(table)
        stdout.print(
            f"Reports and results.json: {workspace.data_dir / 'reports' / job_id}"
        )
    missing = digest.missing
    if missing and exit_on_missing:
        stderr.print(
            f"[red]{len(missing)} URLs have no valid run[/red]; "
            f"see `lhfleet results {job_id} --failed`."
        )
        sys.exit(1)


def _join(worker: threading.Thread) -> None:
    """Wait for the driver thread; its slots stop their audits before it ends."""
    while worker.is_alive():
        worker.join(timeout=0.5)


class _stop_on_signals:  # noqa: N801 - used as a context manager, reads like one
    """Set ``stop`` on SIGINT and SIGTERM while the job runs."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        for number in (signal.SIGINT, signal.SIGTERM):
            self.previous[number] = signal.signal(number, self._handle)

    def __exit__(self, *_: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    def _handle(self, number: int, _frame: FrameType | None) -> None:
        first = not self.stop.is_set()
        self.stop.set()
        if first:
            with contextlib.suppress(OSError):
                stderr.print(
                    f"Stopping on {signal.Signals(number).name}: "
                    "interrupting the runs in flight"
                )
