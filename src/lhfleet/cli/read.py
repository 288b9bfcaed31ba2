"""Commands that read jobs: jobs, status, results."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from lhfleet import console as views
from lhfleet import service
from lhfleet.cli.common import (
    data_dir_option,
    handle_errors,
    open_workspace,
    stdout,
)
from lhfleet.cli.serve import ServerOptions, server_options
from lhfleet.results import digest_results, results_csv, write_results_json
from lhfleet.summary import results_markdown

logger = logging.getLogger(__name__)


@click.command()
@click.argument("job_id")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "csv", "markdown"]),
    default="table",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--failed", is_flag=True, help="List only the failed runs (the dead letters)."
)
@data_dir_option
@server_options
@handle_errors
def results(
    job_id: str,
    output_format: str,
    as_json: bool,
    failed: bool,
    data_dir: Path | None,
    remote: ServerOptions,
) -> None:
    """Print a job's results: per URL, its runs, representative run and medians."""
    if as_json:
        output_format = "json"
    select = _failed_runs if failed else None
    if not remote.server:
        _print_local_results(open_workspace(data_dir), job_id, output_format, failed)
        return
    document = _remote_results(remote, job_id, output_format)
    if document is None:
        return
    if select is not None:
        document["urls"] = [
            chosen for chosen in map(select, document["urls"]) if chosen
        ]
    _print_document(document, output_format, failed)


def _print_local_results(
    workspace: service.Workspace, job_id: str, output_format: str, failed: bool
) -> None:
    """Print results read from the store one URL's runs at a time."""
    select = _failed_runs if failed else None
    if output_format == "csv":
        sys.stdout.write(results_csv(workspace.store, workspace.reports, job_id))
        return
    if output_format == "json":
        write_results_json(
            workspace.store, workspace.reports, job_id, sys.stdout, select=select
        )
        return
    digest, entries = digest_results(workspace.store, workspace.reports, job_id)
    if select is not None:
        entries = (chosen for chosen in map(select, entries) if chosen)
    if output_format == "table" and not failed:
        for table in views.results_tables(digest.job, entries):
            stdout.print(table)
        return
    _print_document({"job": digest.job, "urls": entries}, output_format, failed)


def _print_document(document: dict[str, Any], output_format: str, failed: bool) -> None:
    if output_format == "json":
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif output_format == "markdown":
        sys.stdout.write(results_markdown(document))
    elif failed:
        stdout.print(views.failures_table(document))
    else:
        stdout.print(views.results_table(document))


def _failed_runs(entry: dict[str, Any]) -> dict[str, Any] | None:
    """Return a URL entry with its failed runs only, or None when it has none."""
    runs = [run for run in entry["runs"] if run["state"] == "failed"]
    return {**entry, "runs": runs} if runs else None


@click.command()
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@data_dir_option
@server_options
@handle_errors
def status(
    job_id: str, as_json: bool, data_dir: Path | None, remote: ServerOptions
) -> None:
    """Print a job's state and run counts."""
    from lhfleet.results import job_document  # noqa: PLC0415

    if remote.server:
        with remote.client() as client:
            document = client.job(job_id)
    else:
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


@click.command()
@click.option(
    "--limit", default=50, show_default=True, help="Maximum number of jobs to list."
)
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


def _remote_results(
    remote: ServerOptions, job_id: str, output_format: str
) -> dict[str, Any] | None:
    """Return a server's results document; print it and return None for CSV."""
    from lhfleet.client import results_csv as remote_csv  # noqa: PLC0415

    with remote.client() as client:
        document = client.results(job_id)
    if output_format == "csv":
        sys.stdout.write(remote_csv(document))
        return None
    return document
