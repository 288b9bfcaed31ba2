"""Terminal output: the live progress bar and the tables the CLI prints."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from lhfleet.models import Job

POLL_SECONDS = 0.5


class OutputConsole(Console):
    """A Console that goes quiet when its reader closes the pipe.

    Rich exits the process on a broken pipe, which would leave the audits
    in flight without their clean-up; lhfleet stops writing instead and
    lets the job stop in order.
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True


def watch(
    console: Console,
    read_job: Callable[[], Job],
    worker: threading.Thread,
    enabled: bool = True,
) -> None:
    """Show a progress bar of the job until ``worker`` ends."""
    job = read_job()
    with Progress(
        TextColumn("[bold]{task.fields[job_id]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("runs"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled,
        transient=False,
    ) as progress:
        task = progress.add_task(
            "job",
            total=job.total,
            job_id=job.id,
            failed=job.failed,
            completed=job.succeeded + job.failed,
        )
        while worker.is_alive():
            worker.join(timeout=POLL_SECONDS)
            job = read_job()
            progress.update(
                task,
                total=job.total,
                completed=job.succeeded + job.failed,
                failed=job.failed,
            )


def _number(value: float | None, digits: int = 0, scale: float = 1.0) -> str:
    if value is None:
        return "–"
    return f"{value * scale:,.{digits}f}"


def results_table(document: dict[str, Any]) -> Table:
    """Return the per-URL table: median score, LCP, TBT, CLS, valid runs."""
    categories = document["job"]["settings"]["categories"]
    table = Table(title=f"Job {document['job']['id']} ({document['job']['state']})")
    table.add_column("URL", overflow="fold")
    for category in categories:
        table.add_column(category, justify="right")
    for name in ("LCP ms", "TBT ms", "CLS"):
        table.add_column(name, justify="right")
    table.add_column("valid runs", justify="right")
    table.add_column("flags")
    for entry in document["urls"]:
        median = entry["median"]
        valid = f"{entry['valid_runs']}/{entry['total_runs']}"
        style = "red" if entry["valid_runs"] == 0 else None
        table.add_row(
            entry["url"],
            *(_number(median.get(category), 0, 100) for category in categories),
            _number(median.get("lcp")),
            _number(median.get("tbt")),
            _number(median.get("cls"), 3),
            valid,
            _flags(entry),
            style=style,
        )
    return table


def _flags(entry: dict[str, Any]) -> str:
    """Return the trust flags of a URL: noisy, contended runs, adaptive outcome."""
    flags = []
    if entry.get("noisy") and entry["valid_runs"]:
        flags.append("noisy")
    if entry.get("contended_runs"):
        flags.append(f"{entry['contended_runs']} contended")
    adaptive = entry.get("adaptive")
    if adaptive:
        met = "target met" if adaptive["target_met"] else "target not met"
        flags.append(f"{adaptive['runs']} runs, {met}")
    return ", ".join(flags)


def failures_table(document: dict[str, Any]) -> Table:
    """Return one row per failed run: the dead letters of a job."""
    table = Table(title=f"Failed runs of job {document['job']['id']}")
    table.add_column("run", no_wrap=True)
    for name in ("URL", "attempts", "code", "message"):
        table.add_column(name, overflow="fold")
    for entry in document["urls"]:
        for run in entry["runs"]:
            if run["state"] == "failed":
                table.add_row(
                    run["id"],
                    entry["url"],
                    str(run["attempts"]),
                    run["error_code"] or "",
                    (run["error_message"] or "")[:300],
                )
    return table


def jobs_table(jobs: list[Job]) -> Table:
    table = Table(title="Jobs, newest first")
    table.add_column("job", no_wrap=True)
    for name in ("state", "created", "runs", "succeeded", "failed", "pending"):
        table.add_column(name, no_wrap=True)
    for job in jobs:
        table.add_row(
            job.id,
            job.state.value,
            job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            str(job.total),
            str(job.succeeded),
            str(job.failed),
            str(job.pending),
        )
    return table


def elapsed_since(started: float) -> str:
    return f"{time.monotonic() - started:.1f} s"
