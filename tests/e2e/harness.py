"""Running the lhfleet command in a subprocess, as a user does, and reading its data."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

LHFLEET = (sys.executable, "-m", "lhfleet")
AUDIT_OPTIONS = ("--categories", "performance", "--concurrency", "2")
"""Options of every job in these tests: one category keeps each audit short."""

JOB_TIMEOUT = 420.0
COMMAND_TIMEOUT = 60.0
METRIC_KEYS = frozenset({"fcp", "lcp", "tbt", "cls", "si", "tti"})
RUN_STATES = frozenset({"queued", "running", "succeeded", "failed"})


def lhfleet(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = COMMAND_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run ``lhfleet ARGS`` to the end and return its exit status and output."""
    return subprocess.run(
        [*LHFLEET, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def environment(**changes: str | None) -> dict[str, str]:
    """Return this process's environment with variables set, or removed for None."""
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def flat(text: str) -> str:
    """Return console text with its line wrapping undone, words one space apart."""
    return " ".join(text.split())


@dataclass(frozen=True)
class DataDir:
    """One lhfleet data folder: its job store, reports, scratch folder and log."""

    path: Path

    @property
    def scratch(self) -> Path:
        return self.path / "scratch"

    @property
    def reports(self) -> Path:
        return self.path / "reports"

    @property
    def log(self) -> Path:
        return self.path / "lhfleet.log"

    def command(self, *args: str) -> list[str]:
        """Return the argv of ``lhfleet ARGS --data-dir PATH``."""
        return [*LHFLEET, *args, "--data-dir", str(self.path)]

    def run(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = COMMAND_TIMEOUT,
    ) -> subprocess.CompletedProcess[str]:
        """Run an lhfleet command on this data folder."""
        return lhfleet(*args, "--data-dir", str(self.path), env=env, timeout=timeout)

    def read_json(self, *args: str) -> Any:
        """Run an lhfleet command that prints JSON, and return what it printed."""
        completed = self.run(*args)
        if completed.returncode != 0:
            raise AssertionError(
                f"lhfleet {' '.join(args)} exited {completed.returncode}: "
                f"{completed.stderr}"
            )
        return json.loads(completed.stdout)

    def jobs(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self.read_json("jobs", "--json")
        return listed

    def stored_job_ids(self) -> list[str]:
        """Return the ids of the jobs in the SQLite job store, read directly.

        Starting ``lhfleet jobs`` costs seconds, so tests that only check
        whether something was queued, or poll, read the file. A missing
        database contains no jobs.
        """
        database = self.path / "lhfleet.db"
        if not database.exists():
            return []
        uri = f"file:{database}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            return [str(row[0]) for row in connection.execute("SELECT id FROM jobs")]

    def stored_counts(self, job_id: str) -> dict[str, int]:
        """Return a job's run counters as the SQLite job store has them now."""
        uri = f"file:{self.path / 'lhfleet.db'}?mode=ro"
        query = "SELECT total, succeeded, failed FROM jobs WHERE id = ?"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            total, succeeded, failed = connection.execute(query, (job_id,)).fetchone()
        return {"total": total, "succeeded": succeeded, "failed": failed}

    def work_folders(self) -> list[Path]:
        """Return the per-audit work folders left in the scratch folder."""
        return sorted(self.scratch.glob("lhfleet-run-*"))


def read_report(path: Path) -> bytes:
    """Return a stored report's bytes, decompressed when it is gzipped."""
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Return the files under ``root`` whose content, gunzipped, contains ``needle``."""
    return [
        path
        for path in sorted(root.rglob("*"))
        if path.is_file() and needle in read_report(path)
    ]


def processes_naming(*markers: str) -> list[psutil.Process]:
    """Return the live processes whose command line contains one of ``markers``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        cmdline = process.info.get("cmdline") or []
        if process.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if any(marker in part for part in cmdline for marker in markers):
            found.append(process)
    return found


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Return the processes that are alive and not zombies (pids reused excluded)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            continue
    return alive
