"""Terminal output: the live progress bar and the tables the CLI prints."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
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

TABLE_PART_ROWS = 1000

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
    table = _empty_results_table(document["job"], first=True)
    for entry in document["urls"]:
        _add_result_row(table, document["job"], entry)
    return table


def results_tables(
    job: dict[str, Any], entries: Iterable[dict[str, Any]]
) -> Iterator[Table]:
    """Yield the per-URL table in parts of ``TABLE_PART_ROWS`` rows.

    Printing each part as it fills keeps a job of thousands of URLs from
    holding every row in memory.
    """
    table = _empty_results_table(job, first=True)
    for entry in entries:
        if table.row_count == TABLE_PART_ROWS:
            yield table
            table = _empty_results_table(job, first=False)
        _add_result_row(table, job, entry)
    yield table


def _empty_results_table(job: dict[str, Any], first: bool) -> Table:
    title = f"Job {job['id']} ({job['state']})"
    table = Table(title=title if first else f"{title}, continued")
    table.add_column("URL", overflow="fold")
    for category in job["settings"]["categories"]:
        table.add_column(category, justify="right")
    for name in ("LCP ms", "TBT ms", "CLS"):
        table.add_column(name, justify="right")
    table.add_column("valid runs", justify="right")
    table.add_column("flags")
    return table


def _add_result_row(table: Table, job: dict[str, Any], entry: dict[str, Any]) -> None:
    categories = job["settings"]["categories"]
    median = entry["median"]
    table.add_row(
        entry["url"],
        *(_number(median.get(category), 0, 100) for category in categories),
        _number(median.get("lcp")),
        _number(median.get("tbt")),
        _number(median.get("cls"), 3),
        f"{entry['valid_runs']}/{entry['total_runs']}",
        _flags(entry),
        style="red" if entry["valid_runs"] == 0 else None,
    )


def noise_flag(entry: dict[str, Any]) -> str:
    """Return "noisy", or "spread unknown" when too few runs have the spread key."""
    spread = entry.get("spread") or {}
    if spread.get("value") is None:
        return "spread unknown"
    return "noisy"


def _flags(entry: dict[str, Any]) -> str:
    """Return the trust flags of a URL: noisy, contended runs, adaptive outcome."""
    flags = []
    if entry.get("noisy") and entry["valid_runs"]:
        flags.append(noise_flag(entry))
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
