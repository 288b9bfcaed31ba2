"""The ``lhfleet`` command: a thin edge over the service functions.

Exit status: 0 when every URL has at least one valid run, 1 when some URL
has none, 2 for usage errors (bad options, invalid URLs, unknown job), 3
when Node, Lighthouse or Chromium is missing or broken, 4 when the job
store fails, 5 when the job reached --max-duration, 130 when interrupted
(``lhfleet resume JOB`` goes on).
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
from rich.console import Console

from lhfleet import codes, service
from lhfleet import console as views
from lhfleet.doctor import doctor_checks
from lhfleet.errors import (
    InvalidSettingError,
    JobDeadlineError,
    JobInterrupted,
    LhfleetError,
)
from lhfleet.inputs import SourceLine, read_lines, validated
from lhfleet.models import CATEGORIES, PRESETS, JobSecrets, JobSettings, JobState
from lhfleet.results import results_csv, urls_without_valid_run
from lhfleet.runtime import Runtime, find_runtime

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_HELP = """
\b
Exit status:
  0    every URL has at least one valid run
  1    some URL has no valid run
  2    usage error: a bad option, an invalid URL, an unknown job
  3    Node, Lighthouse or Chromium is missing or does not start
  4    the job store or report folder failed (for example, a full disk)
  5    the job reached --max-duration; its unfinished runs failed
  130  interrupted; `lhfleet resume JOB` finishes the job
"""

stderr = Console(stderr=True)
stdout = Console(soft_wrap=True)


def data_dir_option(command: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder for the job store and reports "
        "[default: $LHFLEET_HOME or ./.lhfleet].",
    )(command)


def handle_errors(command: F) -> F:
    """Turn lhfleet's errors into a message on stderr and their exit status."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LhfleetError as error:
            stderr.print(f"[red]Error:[/red] {error}", highlight=False, markup=True)
            sys.exit(error.exit_code)

    return wrapper  # type: ignore[return-value]


def open_workspace(data_dir: Path | None) -> service.Workspace:
    workspace = service.Workspace.open(data_dir or service.default_data_dir())
    _log_to_file(workspace.data_dir / "lhfleet.log")
    return workspace


@click.group(epilog=EXIT_HELP)
@click.version_option(package_name="lhfleet")
@click.option(
    "-v", "--verbose", count=True, help="Log more on stderr (-v info, -vv debug)."
)
def main(verbose: int) -> None:
    """Run Lighthouse over many URLs, several runs each, and keep every result."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(level)
    root = logging.getLogger("lhfleet")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)


def _log_to_file(path: Path) -> None:
    root = logging.getLogger("lhfleet")
    if any(isinstance(h, logging.FileHandler) for h in root.handlers):
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(logging.INFO)
    root.addHandler(handler)


def parse_concurrency(value: str) -> int:
    if value == "auto":
        return service.auto_concurrency()
    if value.isdigit() and 1 <= int(value) <= 64:
        return int(value)
    raise InvalidSettingError(
        f"--concurrency is {value!r}; use auto or a whole number from 1 to 64."
    )


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


@dataclass(frozen=True)
class DriveOptions:
    """Options of every command that runs a job's runs here."""

    slots: int
    max_duration: float | None
    as_json: bool
    data_dir: Path | None


def drive_options(command: F) -> F:
    """Add --concurrency, --max-duration, --json and --data-dir as one DriveOptions."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        concurrency: str,
        max_duration: float | None,
        as_json: bool,
        data_dir: Path | None,
        **kwargs: Any,
    ) -> Any:
        if max_duration is not None and max_duration <= 0:
            raise click.BadParameter(
                "use a number of seconds above 0", param_hint="--max-duration"
            )
        drive = DriveOptions(
            parse_concurrency(concurrency), max_duration, as_json, data_dir
        )
        return command(*args, drive=drive, **kwargs)

    options = [
        click.option(
            "--concurrency",
            default="auto",
            show_default=True,
            help="Audits at once: a number, or auto (one per two cores).",
        ),
        click.option(
            "--max-duration",
            type=float,
            default=None,
            help="Seconds the whole job may take; then its unfinished runs fail "
            "and lhfleet exits with 5.",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print the results document as JSON on stdout at the end.",
        ),
        data_dir_option,
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """Return the seconds in an age such as 30d, 12h, 90m or 45s."""
    unit = AGE_UNITS.get(text[-1:].lower())
    number = text[:-1]
    if unit is None or not number.replace(".", "", 1).isdigit():
        raise InvalidSettingError(
            f"--older-than is {text!r}; write a number and a unit (s, m, h, d, w), "
            "such as 30d."
        )
    return float(number) * unit


@main.command(epilog=EXIT_HELP)
@click.argument("urls", nargs=-1)
@click.option(
    "-i",
    "--input",
    "input_file",
    help="Read URLs from a file, one per line ('-' for stdin).",
)
@click.option("--runs", default=3, show_default=True, help="Runs per URL.")
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
@drive_options
@handle_errors
def run(
    urls: tuple[str, ...],
    input_file: str | None,
    runs: int,
    preset: str,
    categories: str,
    timeout: float,
    retries: int,
    chrome_flags: str,
    extra_headers: str | None,
    ignore_certificate_errors: bool,
    strip_screenshots: bool,
    drive: DriveOptions,
) -> None:
    """Audit URLS (and those in --input), RUNS times each, and keep every report."""
    settings = JobSettings(
        runs=runs,
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
    service.validate_settings(settings)
    secrets = JobSecrets(extra_headers=parse_extra_headers(extra_headers))
    url_list = gather_urls(urls, input_file)
    runtime = find_runtime()
    workspace = open_workspace(drive.data_dir)
    job = service.submit(workspace, url_list, settings, secrets)
    stderr.print(
        f"Job [bold]{job.id}[/bold]: {len(url_list)} URLs × {runs} runs = "
        f"{job.total} runs, {drive.slots} at a time"
    )
    _drive_and_report(workspace, job.id, drive, runtime)


@main.command(epilog=EXIT_HELP)
@click.argument("job_id")
@drive_options
@handle_errors
def resume(job_id: str, drive: DriveOptions) -> None:
    """Finish a job that was interrupted, without redoing settled runs."""
    workspace = open_workspace(drive.data_dir)
    workspace.store.get_job(job_id)
    _drive_and_report(workspace, job_id, drive, find_runtime())


@main.command(epilog=EXIT_HELP)
@click.argument("job_id")
@drive_options
@handle_errors
def retry(job_id: str, drive: DriveOptions) -> None:
    """Run a job's failed runs (its dead letters) again, with fresh attempts."""
    workspace = open_workspace(drive.data_dir)
    workspace.store.get_job(job_id)
    runtime = find_runtime()
    count = service.retry_failed(workspace, job_id)
    stderr.print(f"Queued {count} failed runs of job {job_id} again.")
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
        views.watch(stderr, lambda: workspace.store.get_job(job_id), worker)
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


@main.command()
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


@main.command()
@click.argument("job_id")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--failed", is_flag=True, help="List only the failed runs (the dead letters)."
)
@data_dir_option
@handle_errors
def results(
    job_id: str, output_format: str, as_json: bool, failed: bool, data_dir: Path | None
) -> None:
    """Print a job's results: per URL, its runs, representative run and medians."""
    workspace = open_workspace(data_dir)
    if as_json:
        output_format = "json"
    if output_format == "csv":
        sys.stdout.write(results_csv(workspace.store, workspace.reports, job_id))
        return
    document = service.results(workspace, job_id)
    if failed:
        document["urls"] = [
            {
                **entry,
                "runs": [run for run in entry["runs"] if run["state"] == "failed"],
            }
            for entry in document["urls"]
        ]
        document["urls"] = [entry for entry in document["urls"] if entry["runs"]]
    if output_format == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif failed:
        stdout.print(views.failures_table(document))
    else:
        stdout.print(views.results_table(document))


@main.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@data_dir_option
@handle_errors
def status(job_id: str, as_json: bool, data_dir: Path | None) -> None:
    """Print a job's state and run counts."""
    from lhfleet.results import job_document  # noqa: PLC0415

    workspace = open_workspace(data_dir)
    document = job_document(workspace.store.get_job(job_id))
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    counts = document["counts"]
    stdout.print(
        f"{document['id']}: {document['state']}, {counts['succeeded']} succeeded, "
        f"{counts['failed']} failed, {counts['pending']} pending "
        f"of {counts['total']} runs"
    )


@main.command()
@click.option("--limit", default=50, show_default=True, help="Most jobs to list.")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as JSON.")
@data_dir_option
@handle_errors
def jobs(limit: int, as_json: bool, data_dir: Path | None) -> None:
    """List jobs, newest first."""
    from lhfleet.results import job_document  # noqa: PLC0415

    workspace = open_workspace(data_dir)
    listed = workspace.store.list_jobs(limit=limit)
    if as_json:
        sys.stdout.write(
            json.dumps([job_document(job) for job in listed], indent=2) + "\n"
        )
    else:
        stdout.print(views.jobs_table(listed))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@handle_errors
def doctor(as_json: bool) -> None:
    """Check Python, Node, Lighthouse and Chromium; say how to fix what is missing."""
    checks = doctor_checks()
    if as_json:
        sys.stdout.write(
            json.dumps([check.__dict__ for check in checks], indent=2) + "\n"
        )
    else:
        for check in checks:
            mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
            stdout.print(f"{mark} {check.name}: {check.detail}", highlight=False)
            if not check.ok and check.fix:
                stdout.print(f"       fix: {check.fix}", highlight=False)
    if not all(check.ok for check in checks):
        sys.exit(3)


def _print_results(
    workspace: service.Workspace,
    job_id: str,
    as_json: bool,
    exit_on_missing: bool = True,
) -> None:
    document = service.results(workspace, job_id)
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        stdout.print(views.results_table(document))
        stdout.print(
            f"Reports and results.json: {workspace.data_dir / 'reports' / job_id}"
        )
    missing = urls_without_valid_run(document)
    if missing and exit_on_missing:
        stderr.print(
            f"[red]{len(missing)} URLs have no valid run[/red]; "
            f"see `lhfleet results {job_id} --failed`."
        )
        sys.exit(1)


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
        if not self.stop.is_set():
            stderr.print(
                f"Stopping on {signal.Signals(number).name}: "
                "interrupting the runs in flight"
            )
        self.stop.set()


if __name__ == "__main__":
    main()
