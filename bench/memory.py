"""Measure lhfleet's own peak memory on a 10,000-URL job.

Lighthouse and Chrome run in their own processes, so what grows with a
job's size in lhfleet's process is the URL list, the job store and the
results. The script generates a list of URLs on .test hosts (nothing is
fetched), then measures the peak resident memory (max RSS) of:

  1. ``lhfleet run -i URLS --dry-run --json``: reading, checking and
     normalizing the list;
  2. ``lhfleet run -i URLS --json`` in a process whose audits are replaced
     by lhfleet's audit stand-in (a stored minimal report, no Lighthouse),
     so the store, the worker slots, the results document and the
     completion all run as in a real job;
  3. ``lhfleet results JOB --json``, ``lhfleet results JOB`` (the table)
     and ``lhfleet status JOB`` on the finished job.

It prints a Markdown table for BENCHMARKS.md.

    .venv/bin/python bench/memory.py                 # 10,000 URLs x 3 runs
    .venv/bin/python bench/memory.py --urls 1000 --runs 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from realsite import environment_rows, markdown_table

from lhfleet import service
from lhfleet.cli import main as lhfleet_main
from lhfleet.dispatch.celery.standin import StandInAuditor, minimal_report

LIMIT_MB = 150.0


def peak_of(command: list[str], stdout: Path) -> tuple[float, float, int]:
    """Run a command; return its peak RSS in MB, wall seconds and exit status."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "with open(sys.argv[1], 'wb') as out:\n"
        "    status = subprocess.run(sys.argv[2:], stdout=out).returncode\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print(peak, status)\n"
    )
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-c", wrapper, str(stdout), *command],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.monotonic() - started
    peak_kib, status = completed.stdout.split()
    return int(peak_kib) / 1024, wall, int(status)


def stand_in_run(arguments: list[str]) -> None:
    """Run ``lhfleet run ARGUMENTS`` here with the audit stand-in; print peak RSS."""
    report = minimal_report()
    # drive() builds its Auditor from this name: the stand-in replaces the
    # audits alone, and everything else runs as in `lhfleet run`.
    setattr(service, "Auditor", lambda *_args: StandInAuditor(report, 0.0))  # noqa: B010
    try:
        lhfleet_main(["run", *arguments], standalone_mode=False)
    finally:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"peak_kib": peak}), file=sys.stderr)


def write_urls(path: Path, count: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for number in range(count):
            host = f"site{number % 100}.test"
            handle.write(f"https://{host}/section-{number % 37}/page-{number}.html\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=10_000, help="URLs [10000].")
    parser.add_argument("--runs", type=int, default=3, help="Runs per URL [3].")
    parser.add_argument(
        "--concurrency", default="8", help="Worker slots of the stand-in job [8]."
    )
    parser.add_argument(
        "--stand-in-run", nargs=argparse.REMAINDER, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.stand_in_run is not None:
        stand_in_run(args.stand_in_run)
        return 0
    lhfleet = [sys.executable, "-m", "lhfleet"]
    invocation = shlex.join(["bench/memory.py", *(argv or sys.argv[1:])])
    # The date, hardware and load average before the first command.
    environment = environment_rows(Path("/"))[:5]
    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="lhfleet-memory-") as temp:
        folder = Path(temp)
        urls = folder / "urls.txt"
        write_urls(urls, args.urls)
        data = folder / "data"
        out = folder / "stdout"
        common = ["--data-dir", str(data)]

        def measure(label: str, command: list[str]) -> None:
            peak, wall, status = peak_of(command, out)
            verdict = "yes" if peak < LIMIT_MB else "no"
            rows.append(
                [label, f"{peak:.0f} MB", verdict, f"{wall:.1f} s", str(status)]
            )
            print(f"{label}: {peak:.0f} MB in {wall:.1f} s", file=sys.stderr)

        run_options = ["-i", str(urls), "--runs", str(args.runs), *common]
        measure(
            "run --dry-run --json",
            [*lhfleet, "run", *run_options, "--dry-run", "--json"],
        )
        stand_in = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--stand-in-run",
            *run_options,
            "--concurrency",
            args.concurrency,
            "--categories",
            "performance",
            "--json",
        ]
        measure("run --json (audit stand-in)", stand_in)
        document = json.loads(out.read_text(encoding="utf-8"))
        job_id = document["job"]["id"]
        counts = document["job"]["counts"]
        measure("results --json", [*lhfleet, "results", job_id, "--json", *common])
        measure("results (table)", [*lhfleet, "results", job_id, *common])
        measure("status", [*lhfleet, "status", job_id, *common])
    print(
        "\n".join(
            [
                "### lhfleet's own memory on a large job",
                "",
                f"Command: `{invocation}`",
                "",
                markdown_table(["", ""], [list(row) for row in environment]),
                "",
                f"{args.urls} URLs × {args.runs} runs = {counts['total']} runs "
                f"({counts['succeeded']} succeeded), SQLite store, "
                f"{os.cpu_count()} cores. Peak RSS is the process's max resident "
                "set size (getrusage); the limit is "
                f"{LIMIT_MB:.0f} MB.",
                "",
                markdown_table(
                    ["command", "peak RSS", f"under {LIMIT_MB:.0f} MB", "wall", "exit"],
                    rows,
                ),
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
