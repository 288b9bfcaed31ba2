"""Fixtures of the hostile-page tests: the loopback site and lhfleet as a process."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.hostile.server import HostileSite

LHFLEET = [sys.executable, "-m", "lhfleet"]
FAST_OPTIONS = ("--categories", "performance", "--concurrency", "2")
JOB_WAIT = 420.0
UNREACHABLE_TIMEOUT = 45
"""Seconds a test waits for one lhfleet command before it gives up."""


@dataclass
class Finished:
    """How one lhfleet command ended."""

    exit_code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def document(self) -> dict[str, Any]:
        """Return the results document that --json printed."""
        parsed: dict[str, Any] = json.loads(self.stdout)
        return parsed

    def entry(self, url: str) -> dict[str, Any]:
        """Return the results entry of ``url``."""
        for entry in self.document["urls"]:
            if entry["url"] == url:
                return dict(entry)
        raise KeyError(f"{url} is not in the results of this job")

    def run(self, url: str, index: int = 0) -> dict[str, Any]:
        return dict(self.entry(url)["runs"][index])


def lhfleet_env(**overrides: str) -> dict[str, str]:
    return {**os.environ, **overrides}


def start(
    data_dir: Path, *arguments: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """Start ``lhfleet ARGUMENTS --data-dir DATA_DIR`` in the background."""
    return subprocess.Popen(
        [*LHFLEET, *arguments, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or lhfleet_env(),
    )


def finish(process: subprocess.Popen[str], started: float) -> Finished:
    """Wait for a started lhfleet command; kill it if it outlives JOB_WAIT."""
    try:
        out, err = process.communicate(timeout=JOB_WAIT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return Finished(process.returncode, out, err, time.monotonic() - started)


def run_lhfleet(
    data_dir: Path, *arguments: str, env: dict[str, str] | None = None
) -> Finished:
    started = time.monotonic()
    return finish(start(data_dir, *arguments, env=env), started)


@dataclass(frozen=True)
class JobSpec:
    """One ``lhfleet run`` of the page tests: its URLs and options."""

    name: str
    urls: tuple[str, ...]
    options: tuple[str, ...]


@dataclass
class JobOutcome:
    """A finished job of the page tests, with the temp folders its audits used."""

    finished: Finished
    data_dir: Path
    temp_dirs: set[Path]


@dataclass
class Fleet:
    """Runs the page tests' jobs two at a time, so that hung pages overlap."""

    root: Path
    pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="job")
    )
    futures: dict[str, Future[JobOutcome]] = field(default_factory=dict)
    running: list[subprocess.Popen[str]] = field(default_factory=list)

    def submit(self, spec: JobSpec) -> None:
        arguments = ("run", *spec.urls, "--json", *FAST_OPTIONS, *spec.options)
        future = self.pool.submit(self.run_watched, self.root / spec.name, arguments)
        self.futures[spec.name] = future

    def run_watched(self, data_dir: Path, arguments: tuple[str, ...]) -> JobOutcome:
        """Run lhfleet to the end, noting each audit's temp folder while it runs."""
        started = time.monotonic()
        process = start(data_dir, *arguments)
        self.running.append(process)
        temp_dirs: set[Path] = set()
        while process.poll() is None and time.monotonic() - started < JOB_WAIT:
            temp_dirs |= audit_temp_dirs(data_dir)
            time.sleep(0.5)
        return JobOutcome(finish(process, started), data_dir, temp_dirs)

    def outcome(self, name: str) -> JobOutcome:
        return self.futures[name].result(timeout=JOB_WAIT * 2)

    def result(self, name: str) -> Finished:
        return self.outcome(name).finished

    def close(self) -> None:
        """Drop the jobs not started yet and interrupt those still running."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in self.running:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        self.pool.shutdown(wait=True)


GOOD_PATHS = ("/good/first.html", "/good/second.html")
MIXED_PATHS = (
    *GOOD_PATHS,
    "/narrow-loop.html",
    "/stalled.html",
    "/redirect-other-host",
    "/redirect-loop",
    "/doc.pdf",
    "/data.json",
    "/pixel.png",
    "/no-content-type.html",
    "/dialogs.html",
)
STATUS_PATHS = ("/status-404", "/status-500", "/status-503")
SECURE_PATH = "/good/secure.html"


def page_jobs(site: HostileSite) -> list[JobSpec]:
    """Return the page tests' jobs, longest first.

    The mixed and clean jobs share their settings, so that the good pages'
    results can be compared between them. --timeout 120 leaves room for
    Lighthouse's 45 s wait for the load event on a loaded two-core host. The
    narrow loop takes all of it, but only once, because --retries is 0.
    """
    one_run = ("--runs", "1", "--retries", "0", "--timeout", "120")
    mixed = [site.url(path) for path in MIXED_PATHS]
    return [
        JobSpec("mixed", (*mixed, site.secure_url(SECURE_PATH)), one_run),
        JobSpec(
            "statuses",
            tuple(site.url(path) for path in STATUS_PATHS),
            ("--runs", "1", "--retries", "1", "--timeout", "90"),
        ),
        JobSpec(
            "blank",
            (site.url("/blank-alternate.html"),),
            ("--runs", "2", "--retries", "0", "--timeout", "90"),
        ),
        JobSpec(
            "unreachable",
            (site.closed_url, site.silent_url),
            ("--runs", "1", "--retries", "1", "--timeout", str(UNREACHABLE_TIMEOUT)),
        ),
        JobSpec(
            "desktop",
            (site.secure_url(SECURE_PATH), site.url("/narrow-loop.html")),
            (
                "--runs",
                "1",
                "--retries",
                "0",
                "--timeout",
                "90",
                "--preset",
                "desktop",
                "--ignore-certificate-errors",
            ),
        ),
        JobSpec("clean", tuple(site.url(path) for path in GOOD_PATHS), one_run),
    ]


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostileSite]:
    hostile = HostileSite(tmp_path_factory.mktemp("certificate"))
    yield hostile
    hostile.close()


@pytest.fixture(scope="session")
def fleet(
    site: HostileSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Fleet]:
    """Start every page job at once; each test waits only for the job it reads."""
    jobs = Fleet(tmp_path_factory.mktemp("fleet"))
    for spec in page_jobs(site):
        jobs.submit(spec)
    yield jobs
    jobs.close()


@pytest.fixture(scope="session", autouse=True)
def start_fleet_early(request: pytest.FixtureRequest) -> None:
    """Start the page jobs before the first hostile test, if any test reads them.

    The crash and signal tests then run while the page jobs wait on hung pages.
    """
    if any(
        "fleet" in getattr(item, "fixturenames", ()) for item in request.session.items
    ):
        request.getfixturevalue("fleet")


def audit_temp_dirs(data_dir: Path) -> set[Path]:
    """Return the temp folders that the data dir's running audits recorded."""
    found = set()
    for marker in data_dir.glob("scratch/lhfleet-run-*/tempdir"):
        try:
            found.add(Path(marker.read_text(encoding="utf-8").strip()))
        except OSError:
            continue
    return found


def audit_processes(data_dir: Path, temp_dirs: set[Path]) -> list[psutil.Process]:
    """Return Lighthouse and Chrome processes of audits under ``data_dir``.

    Lighthouse names the data dir on its command line and Chrome names its
    temp folder; both are listed, and lhfleet's own process is not.
    """
    markers = [str(data_dir), *(str(temp) for temp in temp_dirs)]
    found = []
    for process in psutil.process_iter(["cmdline", "name"]):
        cmdline = process.info["cmdline"] or []
        if cmdline[1:3] == LHFLEET[1:3] or process.pid == os.getpid():
            continue
        if any(marker in part for marker in markers for part in cmdline):
            found.append(process)
    return found


def chrome_processes(data_dir: Path, temp_dirs: set[Path]) -> list[psutil.Process]:
    return [
        process
        for process in audit_processes(data_dir, temp_dirs)
        if "chrom" in (process.info["name"] or "")
    ]


def chrome_browsers(data_dir: Path, temp_dirs: set[Path]) -> list[psutil.Process]:
    """Return the Chrome browser processes (not renderers or helpers) of audits."""
    return [
        process
        for process in chrome_processes(data_dir, temp_dirs)
        if not any(part.startswith("--type=") for part in process.info["cmdline"])
    ]


def wait_for_chromes(
    data_dir: Path, count: int, timeout: float = 90.0
) -> tuple[list[psutil.Process], set[Path]]:
    """Wait until ``count`` Chrome browsers of the data dir run; return them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        temps = audit_temp_dirs(data_dir)
        browsers = chrome_browsers(data_dir, temps)
        if len(browsers) >= count:
            return browsers, temps
        time.sleep(0.2)
    raise TimeoutError(f"fewer than {count} Chrome browsers started in {data_dir}")


def leftover_work_dirs(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("scratch/lhfleet-run-*"))


def lighthouse_profiles(temp_dirs: set[Path]) -> list[Path]:
    """Return the Lighthouse profiles (``lighthouse.*``) left in the temp folders."""
    return [profile for temp in temp_dirs for profile in temp.glob("lighthouse.*")]


def kill_audit_processes(data_dir: Path, temp_dirs: set[Path]) -> None:
    """Kill what a test expected lhfleet to leave behind, and remove its folders."""
    for process in audit_processes(data_dir, temp_dirs):
        with contextlib.suppress(psutil.Error):
            process.kill()
    for temp in temp_dirs:
        shutil.rmtree(temp, ignore_errors=True)
