"""``lhfleet aws``: submit jobs to the AWS engine, follow them, retry, fetch results.

The commands read the stack's resource names from LHFLEET_AWS_* variables
and use boto3's usual credentials, region and AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lhfleet import console as views
from lhfleet.cli.common import handle_errors, stderr, stdout
from lhfleet.cli.jobs import gather_urls, parse_extra_headers
from lhfleet.errors import EnvironmentProblem
from lhfleet.models import CATEGORIES, PRESETS, JobSecrets, JobSettings, Target
from lhfleet.results import urls_without_valid_run

if TYPE_CHECKING:
    from lhfleet.aws.client import AwsClient

logger = logging.getLogger(__name__)


def open_client() -> AwsClient:
    """Return a client on the stack the environment names."""
    try:
        from lhfleet.aws.client import AwsClient  # noqa: PLC0415
        from lhfleet.aws.engine import AwsEngine  # noqa: PLC0415
    except ImportError as error:
        raise EnvironmentProblem(
            f"The AWS engine needs boto3 ({error}). Install it with "
            "`pip install 'lhfleet[aws]'`."
        ) from error
    return AwsClient(AwsEngine.from_env())


@click.group()
def aws() -> None:
    """Run jobs on the AWS engine (Lambda, SQS, DynamoDB, S3); see docs/aws.md."""


@aws.command()
@click.argument("urls", nargs=-1)
@click.option(
    "-i", "--input", "input_file", help="Read URLs from a file ('-' for stdin)."
)
@click.option("--runs", default=3, show_default=True, help="Runs per URL.")
@click.option(
    "--preset", type=click.Choice(PRESETS), default="mobile", show_default=True
)
@click.option(
    "--categories",
    default=",".join(CATEGORIES),
    show_default=True,
    help="Comma-separated Lighthouse categories.",
)
@click.option(
    "--timeout", default=120.0, show_default=True, help="Seconds one run may take."
)
@click.option(
    "--retries",
    default=2,
    show_default=True,
    help="Extra attempts for transient failures.",
)
@click.option("--chrome-flags", default="", help="Extra Chrome flags, space-separated.")
@click.option(
    "--extra-headers",
    default=None,
    help="HTTP headers for every request: a JSON object or a file. Never in results.",
)
@click.option(
    "--ignore-certificate-errors",
    is_flag=True,
    help="Accept invalid HTTPS certificates.",
)
@click.option(
    "--strip-screenshots", is_flag=True, help="Leave screenshots out of JSON reports."
)
@click.option(
    "--hook",
    "hooks",
    multiple=True,
    help="URL that gets a POST with the job's results when it completes (repeatable).",
)
@click.option("--no-watch", is_flag=True, help="Print the job id and return at once.")
@click.option(
    "--download",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to save results.json (and with --reports, every report) into.",
)
@click.option("--reports", is_flag=True, help="With --download, save every report too.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the results document as JSON."
)
@handle_errors
def submit(
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
    hooks: tuple[str, ...],
    no_watch: bool,
    download: Path | None,
    reports: bool,
    as_json: bool,
) -> None:
    """Submit URLS (and those in --input), RUNS times each, to the AWS engine."""
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
    secrets = JobSecrets(extra_headers=parse_extra_headers(extra_headers))
    targets = [Target(url) for url in gather_urls(urls, input_file)]
    client = open_client()
    submission = client.submit(targets, settings, secrets, list(hooks))
    job = submission.job
    stderr.print(
        f"Job [bold]{job.id}[/bold]: {len(targets)} URLs × {runs} runs = "
        f"{job.total} runs, {submission.progress.published} published"
    )
    if no_watch:
        stdout.print(job.id)
        return
    _watch_and_report(client, job.id, download, reports, as_json, None)


@aws.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@handle_errors
def status(job_id: str, as_json: bool) -> None:
    """Print a job's state and run counts."""
    from lhfleet.results import job_document  # noqa: PLC0415

    client = open_client()
    document = job_document(client.job(job_id))
    document["results_ready"] = client.finished(job_id)
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return
    counts = document["counts"]
    stdout.print(
        f"{job_id}: {document['state']}, {counts['succeeded']} succeeded, "
        f"{counts['failed']} failed, {counts['pending']} pending of "
        f"{counts['total']} runs"
    )


@aws.command()
@click.argument("job_id")
@click.option(
    "--download",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to save results.json (and with --reports, every report) into.",
)
@click.option("--reports", is_flag=True, help="With --download, save every report too.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the results document as JSON."
)
@click.option(
    "--max-wait",
    type=float,
    default=None,
    help="Seconds to watch before giving up (the job goes on in AWS).",
)
@handle_errors
def watch(
    job_id: str,
    download: Path | None,
    reports: bool,
    as_json: bool,
    max_wait: float | None,
) -> None:
    """Show a job's progress until it completes, then its results."""
    client = open_client()
    client.job(job_id)
    _watch_and_report(client, job_id, download, reports, as_json, max_wait)


@aws.command()
@click.argument("job_id")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--download",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to save results.json (and with --reports, every report) into.",
)
@click.option("--reports", is_flag=True, help="With --download, save every report too.")
@handle_errors
def results(
    job_id: str, output_format: str, download: Path | None, reports: bool
) -> None:
    """Print a completed job's results; optionally save them and its reports."""
    client = open_client()
    document = client.summary(job_id)
    _print(client, job_id, document, download, reports, output_format == "json")


@aws.command()
@click.argument("job_id")
@click.option(
    "--no-watch", is_flag=True, help="Return once the runs are queued and sent."
)
@click.option(
    "--download",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to save results.json (and with --reports, every report) into.",
)
@click.option("--reports", is_flag=True, help="With --download, save every report too.")
@click.option(
    "--json", "as_json", is_flag=True, help="Print the results document as JSON."
)
@click.option(
    "--max-wait",
    type=float,
    default=None,
    help="Seconds to watch before giving up (the job goes on in AWS).",
)
@handle_errors
def retry(
    job_id: str,
    no_watch: bool,
    download: Path | None,
    reports: bool,
    as_json: bool,
    max_wait: float | None,
) -> None:
    """Run a job's failed runs again, with fresh attempts, then show its results.

    The job completes again when they settle; hooks that were delivered
    are not fired again.
    """
    client = open_client()
    outcome = client.retry(job_id)
    stderr.print(
        f"Queued {outcome.requeued} failed runs of job {job_id} again "
        f"({outcome.published} messages sent)."
    )
    if no_watch:
        return
    _watch_and_report(client, job_id, download, reports, as_json, max_wait)


@aws.command()
@click.argument("job_id")
@click.option(
    "--redeliver",
    is_flag=True,
    help="Make failed deliveries pending and deliver them from this machine.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the deliveries as JSON.")
@handle_errors
def hooks(job_id: str, redeliver: bool, as_json: bool) -> None:
    """Show a job's hook deliveries and every attempt; redeliver failed ones."""
    from lhfleet.cli.serve import deliveries_table  # noqa: PLC0415

    client = open_client()
    outcome = client.hooks(job_id, redeliver)
    if redeliver:
        stderr.print(
            f"Redelivered {outcome.made_pending} failed hooks of job {job_id}; "
            f"{outcome.delivered} were accepted."
        )
    if as_json:
        sys.stdout.write(json.dumps(outcome.deliveries, indent=2) + "\n")
        return
    stdout.print(deliveries_table(job_id, outcome.deliveries))


def _watch_and_report(
    client: AwsClient,
    job_id: str,
    download: Path | None,
    reports: bool,
    as_json: bool,
    max_wait: float | None,
) -> None:
    outcome: dict[str, BaseException] = {}

    def wait() -> None:
        try:
            client.wait(job_id, timeout=max_wait)
        except BaseException as error:  # noqa: BLE001 - re-raised below
            outcome["error"] = error

    waiter = threading.Thread(target=wait, name="lhfleet-aws-watch", daemon=True)
    waiter.start()
    views.watch(stderr, lambda: client.job(job_id), waiter, enabled=stderr.is_terminal)
    if "error" in outcome:
        raise outcome["error"]
    _print(client, job_id, client.summary(job_id), download, reports, as_json)


def _print(
    client: AwsClient,
    job_id: str,
    document: dict[str, Any],
    download: Path | None,
    reports: bool,
    as_json: bool,
) -> None:
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        stdout.print(views.results_table(document))
    if download is not None:
        saved = client.download(job_id, download, reports)
        stderr.print(f"Saved {len(saved)} files in {download / job_id}")
    missing = urls_without_valid_run(document)
    if missing:
        stderr.print(f"[red]{len(missing)} URLs have no valid run[/red].")
        sys.exit(1)
