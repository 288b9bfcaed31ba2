"""Compare lhfleet's concurrency against a sequential Lighthouse CLI loop.

On the same pages of the Python 3.11 documentation (Debian's python3.11-doc,
served on 127.0.0.1; install it with bench/set-up-realsite.sh), in one
session, the script runs:

  a. a sequential loop of the pinned Lighthouse CLI, one process per run;
  b. ``lhfleet run --concurrency 1``;
  c. ``lhfleet run --concurrency auto``;
  d. ``lhfleet run --concurrency N`` with N the number of cores;
  e. Lighthouse CI's ``lhci collect`` (@lhci/cli 0.14.0) and
     f. lighthouse-batch, when bench/set-up-others.sh has installed them;
  n. the sequential CLI loop again: how far it lands from (a) is how far
     two identical measurements drift apart on this machine, the floor
     below which no difference means anything.

It prints a Markdown section for BENCHMARKS.md: wall time and throughput
against (a), the host's CPU use, lhfleet's peak memory (its Python process;
the Node runners and Chrome are reported apart), and per page the
difference of the median performance score and median TBT against (a).

    .venv/bin/python bench/concurrency.py                  # 6 pages x 3 runs
    .venv/bin/python bench/concurrency.py --pages-limit 2 --runs 1 --modes a,c
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from realsite import (
    BENCH_DIR,
    DOCS_DIR,
    PAGES_FILE,
    BenchError,
    environment_rows,
    find_lhfleet,
    markdown_table,
    read_pages,
    serve,
)

from lhfleet import runtime
from lhfleet.auditor import REQUIRED_CHROME_FLAGS

CATEGORIES = "performance,accessibility,best-practices,seo"
OTHERS_DIR = BENCH_DIR / ".others"
MODES = {
    "a": "Lighthouse CLI, sequential loop",
    "b": "lhfleet, concurrency 1",
    "c": "lhfleet, concurrency auto",
    "d": "lhfleet, concurrency = cores",
    "e": "lhci collect (@lhci/cli 0.14.0, its Lighthouse 12.1.0)",
    "f": "lighthouse-batch 8.1.1 (its Lighthouse 8.6.0)",
    "n": "Lighthouse CLI, sequential loop again (the noise floor)",
}
SCORE_TOLERANCE = 0.03
TBT_SHARE = 0.25
TBT_FLOOR_MS = 50.0


@dataclass
class Sample:
    """The performance score and TBT of one run of one page."""

    score: float | None
    tbt: float | None


@dataclass
class ModeResult:
    key: str
    label: str
    wall_seconds: float
    cpu_percent: float
    samples: dict[str, list[Sample]]
    failed_runs: int
    peak_rss_mb: float | None = None
    peak_helpers_mb: float | None = None
    notes: list[str] = field(default_factory=list)


def chrome_flags() -> list[str]:
    flags = list(REQUIRED_CHROME_FLAGS)
    if os.geteuid() == 0:
        flags.append("--no-sandbox")
    return flags


def sample_of(lhr: dict[str, Any]) -> Sample:
    score = ((lhr.get("categories") or {}).get("performance") or {}).get("score")
    tbt = ((lhr.get("audits") or {}).get("total-blocking-time") or {}).get(
        "numericValue"
    )
    return Sample(score, tbt)


class Meter:
    """Samples the peak memory of a process (and its children) while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_self = 0
        self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            try:
                process = psutil.Process(self.pid)
                own = process.memory_info().rss
                children = sum(
                    child.memory_info().rss
                    for child in process.children(recursive=True)
                )
            except psutil.Error:
                continue
            self.peak_self = max(self.peak_self, own)
            self.peak_children = max(self.peak_children, children)

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.peak_self / 2**20, self.peak_children / 2**20


def timed(work: Callable[[], ModeResult]) -> ModeResult:
    before = psutil.cpu_times()
    started = time.monotonic()
    result = work()
    result.wall_seconds = time.monotonic() - started
    after = psutil.cpu_times()
    total = sum(after) - sum(before)
    idle = after.idle - before.idle
    result.cpu_percent = 100.0 * (1 - idle / total) if total > 0 else 0.0
    return result


def cli_loop(urls: list[str], runs: int, folder: Path, key: str = "a") -> ModeResult:
    found = runtime.find_runtime()
    samples: dict[str, list[Sample]] = {url: [] for url in urls}
    failed = 0
    env = {**os.environ, "CHROME_PATH": str(found.chrome)}
    for index, url in enumerate(urls):
        for run in range(runs):
            output = folder / f"cli-{key}-{index}-{run}.json"
            command = [
                str(found.node),
                str(found.lighthouse_cli),
                url,
                "--output=json",
                f"--output-path={output}",
                "--quiet",
                f"--only-categories={CATEGORIES}",
                f"--chrome-flags={' '.join(chrome_flags())}",
            ]
            completed = subprocess.run(command, env=env, check=False)
            try:
                samples[url].append(sample_of(json.loads(output.read_bytes())))
            except (OSError, ValueError):
                failed += 1
            if completed.returncode != 0:
                failed += 1
    return ModeResult(key, MODES[key], 0.0, 0.0, samples, failed)


def lhfleet_mode(
    key: str, concurrency: str, urls: list[str], runs: int, folder: Path
) -> ModeResult:
    url_file = folder / "urls.txt"
    url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
    data_dir = folder / f"lhfleet-{key}"
    command = [
        str(find_lhfleet()),
        "run",
        "-i",
        str(url_file),
        "--runs",
        str(runs),
        "--concurrency",
        concurrency,
        "--categories",
        CATEGORIES,
        "--data-dir",
        str(data_dir),
        "--json",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE)
    meter = Meter(process.pid)
    stdout, _ = process.communicate()
    peak_self, peak_children = meter.stop()
    if process.returncode not in (0, 1):
        raise BenchError(
            f"`{shlex.join(command)}` exited with {process.returncode}; "
            "its error is printed above."
        )
    document = json.loads(stdout)
    samples: dict[str, list[Sample]] = {url: [] for url in urls}
    failed = 0
    notes: list[str] = []
    limits: list[int] = []
    for entry in document["urls"]:
        for run in entry["runs"]:
            if run["state"] != "succeeded":
                failed += 1
                continue
            metrics = run.get("metrics") or {}
            samples[entry["url"]].append(
                Sample((run.get("scores") or {}).get("performance"), metrics.get("tbt"))
            )
            limit = (run.get("conditions") or {}).get("concurrency")
            if isinstance(limit, int):
                limits.append(limit)
    if limits and concurrency == "auto":
        notes.append(
            f"runs ran at concurrency {min(limits)} to {max(limits)}, "
            f"median {statistics.median(limits):g}"
        )
    result = ModeResult(
        key, MODES[key], 0.0, 0.0, samples, failed, peak_self, peak_children
    )
    result.notes = notes
    return result


def lhci_mode(urls: list[str], runs: int, folder: Path) -> ModeResult:
    binary = OTHERS_DIR / "node_modules" / ".bin" / "lhci"
    found = runtime.find_runtime()
    samples: dict[str, list[Sample]] = {url: [] for url in urls}
    work = folder / "lhci"
    work.mkdir()
    command = [
        str(found.node),
        str(binary),
        "collect",
        f"--numberOfRuns={runs}",
        f"--settings.chromeFlags={' '.join(chrome_flags())}",
        f"--settings.onlyCategories={CATEGORIES}",
        *[f"--url={url}" for url in urls],
    ]
    env = {**os.environ, "CHROME_PATH": str(found.chrome)}
    subprocess.run(command, cwd=work, env=env, check=False)
    failed = len(urls) * runs
    for path in sorted((work / ".lighthouseci").glob("lhr-*.json")):
        lhr = json.loads(path.read_bytes())
        url = lhr.get("requestedUrl")
        if url in samples:
            samples[url].append(sample_of(lhr))
            failed -= 1
    return ModeResult("e", MODES["e"], 0.0, 0.0, samples, failed)


def batch_mode(urls: list[str], runs: int, folder: Path) -> ModeResult:
    script = OTHERS_DIR / "node_modules" / "lighthouse-batch" / "run.js"
    found = runtime.find_runtime()
    samples: dict[str, list[Sample]] = {url: [] for url in urls}
    failed = 0
    params = (
        f"--only-categories={CATEGORIES} --chrome-flags='{' '.join(chrome_flags())}'"
    )
    # lighthouse-batch starts the `lighthouse` command it depends on with the
    # first `node` on PATH: put the pinned Node there.
    path = f"{found.node.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "CHROME_PATH": str(found.chrome), "PATH": path}
    for run in range(runs):
        out = folder / f"batch-{run}"
        command = [
            str(found.node),
            str(script),
            "--sites",
            ",".join(urls),
            "--params",
            params,
            "--out",
            str(out),
        ]
        subprocess.run(command, env=env, check=False, stdout=subprocess.DEVNULL)
        for url in urls:
            matches = [
                path
                for path in out.glob("*.report.json")
                if json.loads(path.read_bytes()).get("requestedUrl") == url
            ]
            if matches:
                samples[url].append(sample_of(json.loads(matches[0].read_bytes())))
            else:
                failed += 1
    return ModeResult("f", MODES["f"], 0.0, 0.0, samples, failed)


def median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def fidelity_rows(base: ModeResult, other: ModeResult) -> tuple[list[list[str]], bool]:
    rows = []
    within = True
    for url, base_samples in base.samples.items():
        base_score = median([s.score for s in base_samples])
        base_tbt = median([s.tbt for s in base_samples])
        score = median([s.score for s in other.samples.get(url, [])])
        tbt = median([s.tbt for s in other.samples.get(url, [])])
        score_delta = (
            None if score is None or base_score is None else score - base_score
        )
        tbt_delta = None if tbt is None or base_tbt is None else tbt - base_tbt
        allowed = max(TBT_FLOOR_MS, TBT_SHARE * (base_tbt or 0.0))
        ok = (
            score_delta is not None
            and abs(score_delta) <= SCORE_TOLERANCE
            and tbt_delta is not None
            and abs(tbt_delta) <= allowed
        )
        within = within and ok
        rows.append(
            [
                url.split("/", 3)[-1] or url,
                _num(base_score, 2),
                _num(score, 2),
                _signed(score_delta, 2),
                _num(base_tbt, 0),
                _num(tbt, 0),
                _signed(tbt_delta, 0),
                "yes" if ok else "no",
            ]
        )
    return rows, within


def _num(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _signed(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def render(
    results: list[ModeResult],
    environment: list[tuple[str, str]],
    invocation: str,
    pages: int,
    runs: int,
) -> str:
    base = results[0]
    lines = [
        "### Concurrency against a sequential CLI loop",
        "",
        f"Command: `{invocation}`",
        "",
        markdown_table(["", ""], [[key, value] for key, value in environment]),
        "",
        f"{pages} pages × {runs} runs, categories {CATEGORIES}, mobile preset.",
        "",
    ]
    rows = []
    for result in results:
        ratio = base.wall_seconds / result.wall_seconds if result.wall_seconds else 0
        rows.append(
            [
                f"{result.key}. {result.label}",
                f"{result.wall_seconds:.0f} s",
                f"{ratio:.2f}×",
                f"{result.cpu_percent:.0f}%",
                _num(result.peak_rss_mb, 0) + (" MB" if result.peak_rss_mb else ""),
                _num(result.peak_helpers_mb, 0)
                + (" MB" if result.peak_helpers_mb else ""),
                str(result.failed_runs),
                "; ".join(result.notes),
            ]
        )
    lines.append(
        markdown_table(
            [
                "mode",
                "wall",
                "throughput vs a",
                "CPU use",
                "lhfleet peak RSS",
                "Node + Chrome peak RSS",
                "failed runs",
                "notes",
            ],
            rows,
        )
    )
    for result in results[1:]:
        table, within = fidelity_rows(base, result)
        verdict = "every page within" if within else "some page outside"
        lines += [
            "",
            f"**{result.key}. {result.label}** against a ({verdict} "
            f"±{SCORE_TOLERANCE} score and ±max(25%, 50 ms) TBT):",
            "",
            markdown_table(
                [
                    "page",
                    "score a",
                    "score",
                    "Δ",
                    "TBT a ms",
                    "TBT ms",
                    "Δ ms",
                    "within",
                ],
                table,
            ),
        ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=DOCS_DIR)
    parser.add_argument("--pages", type=Path, default=PAGES_FILE)
    parser.add_argument(
        "--pages-limit", type=int, default=6, help="Pages to audit [default: 6]."
    )
    parser.add_argument("--runs", type=int, default=3, help="Runs per page [3].")
    parser.add_argument(
        "--modes",
        default="a,b,c,d,e,f,n",
        help="Comma-separated modes to run, a first [default: a,b,c,d,e,f,n; "
        "e and f only when bench/set-up-others.sh installed them].",
    )
    args = parser.parse_args(argv)
    args.modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    unknown = [mode for mode in args.modes if mode not in MODES]
    if unknown or not args.modes or args.modes[0] != "a":
        parser.error(
            f"--modes is {','.join(args.modes)}; use letters from a to f and n, "
            "starting with a (the baseline)."
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    invocation = shlex.join(["bench/concurrency.py", *(argv or sys.argv[1:])])
    try:
        pages = read_pages(args.pages, args.docs, args.pages_limit)
    except BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    environment = environment_rows(args.docs)
    cores = str(len(os.sched_getaffinity(0)))
    results: list[ModeResult] = []
    with serve(args.docs) as base_url, tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        urls = [base_url + page for page in pages]
        runners: dict[str, Callable[[], ModeResult]] = {
            "a": lambda: cli_loop(urls, args.runs, folder),
            "b": lambda: lhfleet_mode("b", "1", urls, args.runs, folder),
            "c": lambda: lhfleet_mode("c", "auto", urls, args.runs, folder),
            "d": lambda: lhfleet_mode("d", cores, urls, args.runs, folder),
            "e": lambda: lhci_mode(urls, args.runs, folder),
            "f": lambda: batch_mode(urls, args.runs, folder),
            "n": lambda: cli_loop(urls, args.runs, folder, "n"),
        }
        for mode in args.modes:
            if mode in "ef" and not (OTHERS_DIR / "node_modules").is_dir():
                print(f"skipping {mode}: run bench/set-up-others.sh", file=sys.stderr)
                continue
            print(f"running {mode}. {MODES[mode]}", file=sys.stderr)
            results.append(timed(runners[mode]))
            print(f"  {results[-1].wall_seconds:.0f} s", file=sys.stderr)
    print(render(results, environment, invocation, len(pages), args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
