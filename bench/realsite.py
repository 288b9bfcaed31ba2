"""Benchmark ``lhfleet run`` on a real site: pages of the Python 3.11 documentation.

The script serves the HTML documentation of Debian's python3.11-doc package on
127.0.0.1, runs ``lhfleet run`` on the pages in bench/realsite-pages.txt into a
fresh data dir, and times it. Then it prints a Markdown section for
BENCHMARKS.md: the command, the hardware, the versions, the wall time, runs per
minute, and per-page medians read from ``lhfleet results JOB --json``.

Install the documentation first with bench/set-up-realsite.sh. The full run:

    .venv/bin/python bench/realsite.py

A smoke run of 3 pages, 1 run each:

    .venv/bin/python bench/realsite.py --limit 3 --runs 1 --concurrency 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from lhfleet import runtime
from lhfleet.errors import LhfleetError

BENCH_DIR = Path(__file__).resolve().parent
DOCS_DIR = Path("/usr/share/doc/python3.11/html")
PAGES_FILE = BENCH_DIR / "realsite-pages.txt"
HOST = "127.0.0.1"

# Exit statuses of `lhfleet run` after which its results can be read. 0 means
# that every URL has a valid run, and 1 that some URL has none.
RESULTS_READABLE = (0, 1)


class QuietHandler(SimpleHTTPRequestHandler):
    """Static file handler that logs only the requests that failed."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if isinstance(code, int) and code >= 400:
            super().log_request(code, size)

    def log_error(self, format: str, *args: Any) -> None:
        # send_error calls this before log_request, which names the path too.
        pass


class BenchError(Exception):
    """A problem that stops the benchmark, with the message to print."""


@dataclass(frozen=True)
class Measurement:
    """One timed ``lhfleet run`` and what the report needs to describe it."""

    invocation: str
    lhfleet_command: str
    concurrency: str
    environment: list[tuple[str, str]]
    wall_seconds: float
    results: dict[str, Any]
    base_url: str


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time `lhfleet run` on pages of the Python 3.11 documentation "
        "and print a Markdown section for BENCHMARKS.md."
    )
    parser.add_argument(
        "--docs",
        type=Path,
        default=DOCS_DIR,
        help=f"Folder of the HTML documentation [default: {DOCS_DIR}].",
    )
    parser.add_argument(
        "--pages",
        type=Path,
        default=PAGES_FILE,
        help="File of page paths relative to --docs, one per line "
        "[default: bench/realsite-pages.txt].",
    )
    parser.add_argument(
        "--limit",
        type=int,
        help="Audit only the first LIMIT pages of the list (for a smoke run).",
    )
    parser.add_argument(
        "--runs", type=int, default=3, help="Runs per page [default: 3]."
    )
    parser.add_argument(
        "--concurrency",
        default="auto",
        help="Audits at once, passed to `lhfleet run`: a number or auto "
        "[default: auto].",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="New or empty folder for the job store and reports "
        "[default: a new temporary folder, kept after the run].",
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit is {args.limit}; use 1 or more.")
    return args


def read_pages(pages_file: Path, docs: Path, limit: int | None) -> list[str]:
    """Read the first ``limit`` pages of the list, skipping blank lines and # comments.

    Raises BenchError when the list is empty or names a page missing from ``docs``.
    """
    try:
        lines = pages_file.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise BenchError(
            f"Cannot read the page list {pages_file}: {error.strerror}."
        ) from error
    pages = [line.strip() for line in lines if line.strip()]
    pages = [page for page in pages if not page.startswith("#")][:limit]
    if not pages:
        raise BenchError(f"The page list {pages_file} names no page.")

    missing = [page for page in pages if not (docs / page).is_file()]
    if missing:
        raise BenchError(
            f"{len(missing)} pages are missing from {docs}, the first is "
            f"{missing[0]}. Install the documentation with "
            "bench/set-up-realsite.sh, or pass its folder with --docs."
        )
    return pages


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on a free loopback port in a thread and yield the base URL."""
    handler = partial(QuietHandler, directory=str(folder))
    with ThreadingHTTPServer((HOST, 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://{HOST}:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join()


def find_lhfleet() -> Path:
    """Return the lhfleet command of this Python's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("lhfleet")
    if beside.is_file():
        return beside
    found = shutil.which("lhfleet")
    if found is None:
        raise BenchError(
            "The lhfleet command is not installed. Run the script with the "
            "Python of lhfleet's environment, for example .venv/bin/python."
        )
    return Path(found)


def fresh_data_dir(requested: Path | None) -> Path:
    """Create a new or empty data dir and return it, so that it contains one job."""
    if requested is None:
        return Path(tempfile.mkdtemp(prefix="lhfleet-realsite-"))
    if requested.exists() and (not requested.is_dir() or any(requested.iterdir())):
        raise BenchError(
            f"--data-dir {requested} is not an empty folder. Pass a new folder, "
            "so that the results hold this run's job alone."
        )
    requested.mkdir(parents=True, exist_ok=True)
    return requested.resolve()


def run_job(command: list[str]) -> tuple[str, float, int]:
    """Run ``lhfleet run ... --json`` and return the job id, wall seconds and status.

    lhfleet's progress goes to this process's stderr. Raises BenchError when
    lhfleet exits with a status after which no results exist.
    """
    started = time.monotonic()
    completed = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    wall_seconds = time.monotonic() - started
    if completed.returncode not in RESULTS_READABLE:
        raise BenchError(
            f"`{shlex.join(command)}` failed with exit status "
            f"{completed.returncode}; its error is printed above."
        )
    document = json.loads(completed.stdout)
    return str(document["job"]["id"]), wall_seconds, completed.returncode


def read_results(lhfleet: Path, job_id: str, data_dir: Path) -> dict[str, Any]:
    command = [str(lhfleet), "results", job_id, "--json", "--data-dir", str(data_dir)]
    completed = subprocess.run(command, stdout=subprocess.PIPE, check=False)
    if completed.returncode != 0:
        raise BenchError(
            f"`{shlex.join(command)}` failed with exit status {completed.returncode}."
        )
    results: dict[str, Any] = json.loads(completed.stdout)
    return results


def hardware_rows() -> list[tuple[str, str]]:
    """Return the CPU count as nproc counts it, and the CPU model and memory size."""
    cpuinfo = _read_proc("/proc/cpuinfo")
    models = [
        line.split(":", 1)[1].strip()
        for line in cpuinfo.splitlines()
        if line.startswith("model name")
    ]
    meminfo = _read_proc("/proc/meminfo")
    total_kib = next(
        (
            int(line.split()[1])
            for line in meminfo.splitlines()
            if line.startswith("MemTotal:")
        ),
        None,
    )
    memory = f"{total_kib / 2**20:.1f} GiB" if total_kib else "unknown"
    return [
        ("CPUs (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", models[0] if models else "unknown"),
        ("memory", memory),
    ]


def _read_proc(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError:
        return ""


def version_rows() -> list[tuple[str, str]]:
    """Find the Lighthouse, Node and Chromium of lhfleet and return their versions."""
    found = runtime.find_runtime()
    node = runtime.node_version(found.node)
    return [
        ("Lighthouse", runtime.lighthouse_version(found.lighthouse_cli) or "unknown"),
        ("Chromium", runtime.chrome_version(found.chrome)),
        ("Node", ".".join(map(str, node)) if node else "unknown"),
    ]


def docs_package_version() -> str:
    """Return the installed version of python3.11-doc, or "unknown"."""
    command = ["dpkg-query", "--show", "--showformat=${Version}", "python3.11-doc"]
    try:
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError:
        return "unknown"
    return completed.stdout.strip() if completed.returncode == 0 else "unknown"


def environment_rows(docs: Path) -> list[tuple[str, str]]:
    """Return the date, hardware, load, software versions and documentation package."""
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = os.getloadavg()[0]
    return [
        ("date", started),
        *hardware_rows(),
        ("load average (1 min) before the run", f"{load:.2f}"),
        *version_rows(),
        ("documentation", f"{docs}, python3.11-doc {docs_package_version()}"),
    ]


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join(f"| {' | '.join(cells)} |" for cells in lines)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _cls(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def outcome_rows(measurement: Measurement) -> list[list[str]]:
    counts = measurement.results["job"]["counts"]
    settled = counts["succeeded"] + counts["failed"]
    per_minute = settled / (measurement.wall_seconds / 60)
    return [
        ["concurrency", measurement.concurrency],
        ["wall time", f"{measurement.wall_seconds:.1f} s"],
        [
            "runs",
            f"{settled} ({counts['succeeded']} succeeded, {counts['failed']} failed)",
        ],
        ["runs per minute", f"{per_minute:.1f}"],
    ]


def page_rows(measurement: Measurement) -> list[list[str]]:
    """Return one row per page with its medians over the valid runs and their count."""
    rows = []
    for entry in measurement.results["urls"]:
        median = entry["median"]
        rows.append(
            [
                unquote(entry["url"].removeprefix(measurement.base_url)),
                _score(median.get("performance")),
                _ms(median.get("fcp")),
                _ms(median.get("lcp")),
                _ms(median.get("tbt")),
                _cls(median.get("cls")),
                _ms(median.get("benchmark_index")),
                f"{entry['valid_runs']}/{entry['total_runs']}",
            ]
        )
    return rows


def render_report(measurement: Measurement) -> str:
    """Return the Markdown section: commands, environment, outcome and medians."""
    settings = measurement.results["job"]["settings"]
    page_count = len(measurement.results["urls"])
    page_header = ["page", "performance", "FCP ms", "LCP ms", "TBT ms", "CLS"]
    page_header += ["benchmarkIndex", "valid runs"]
    runs = settings["runs"]
    sections = [
        f"## Python 3.11 documentation: {_count(page_count, 'page')} "
        f"× {_count(runs, 'run')}",
        f"Run from the repository root:\n\n    {measurement.invocation}",
        "The script served the documentation on 127.0.0.1 and timed\n\n"
        f"    {measurement.lhfleet_command}\n\n"
        "where URLS lists the pages on that server and DATA_DIR was a new folder. "
        f"Lighthouse settings: preset {settings['preset']}, categories "
        f"{', '.join(settings['categories'])}.",
        markdown_table(
            ["environment", "value"], [list(row) for row in measurement.environment]
        ),
        markdown_table(["outcome", "value"], outcome_rows(measurement)),
        "Per page, the medians over its valid runs (performance score 0-100):",
        markdown_table(page_header, page_rows(measurement)),
    ]
    return "\n\n".join(sections) + "\n"


def benchmark(args: argparse.Namespace, invocation: str) -> int:
    """Serve the pages, time `lhfleet run` on them and print the report.

    Returns the exit status of `lhfleet run`: 0, or 1 when some page has no
    valid run. Raises BenchError for any other failure.
    """
    docs = args.docs.resolve()
    pages = read_pages(args.pages, docs, args.limit)
    lhfleet = find_lhfleet()
    environment = environment_rows(docs)
    data_dir = fresh_data_dir(args.data_dir)
    urls_file = data_dir / "urls.txt"
    options = ["--runs", str(args.runs), "--concurrency", args.concurrency]

    with serve(docs) as base_url:
        urls_file.write_text(
            "".join(f"{base_url}{quote(page)}\n" for page in pages), encoding="utf-8"
        )
        command = [str(lhfleet), "run", "--input", str(urls_file), *options]
        command += ["--data-dir", str(data_dir), "--json"]
        job_id, wall_seconds, status = run_job(command)

    results = read_results(lhfleet, job_id, data_dir)
    concurrency = args.concurrency
    if concurrency == "auto":
        limits = [
            run["conditions"]["concurrency"]
            for entry in results["urls"]
            for run in entry["runs"]
            if (run.get("conditions") or {}).get("concurrency")
        ]
        spread = f"{min(limits)} to {max(limits)}" if limits else "unknown"
        concurrency = f"auto, adjusted while the job ran: {spread} at a time"
    measurement = Measurement(
        invocation=invocation,
        lhfleet_command=shlex.join(["lhfleet", "run", "--input", "URLS", *options])
        + " --data-dir DATA_DIR --json",
        concurrency=concurrency,
        environment=environment,
        wall_seconds=wall_seconds,
        results=results,
        base_url=base_url,
    )
    sys.stdout.write(render_report(measurement))
    print(f"Job {job_id}; reports and job store in {data_dir}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    script = os.path.relpath(__file__)
    invocation = shlex.join([os.path.relpath(sys.executable), script, *argv])
    try:
        return benchmark(args, invocation)
    except (BenchError, LhfleetError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
