"""``lhfleet resume`` after the process that drove a job was killed with SIGKILL.

The killed lhfleet cannot clean up: its Lighthouse and Chrome processes
keep running in their own sessions, and their work folders stay in the
scratch folder. ``resume`` must remove both, keep the runs that had settled,
and run the rest.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from tests.conftest import PageServer
from tests.e2e.harness import (
    AUDIT_OPTIONS,
    JOB_TIMEOUT,
    DataDir,
    processes_naming,
    still_running,
)

pytestmark = pytest.mark.lighthouse

T = TypeVar("T")
POLL_SECONDS = 0.5
SETTLE_TIMEOUT = 240.0
SETTLED = ("succeeded", "failed")


@dataclass
class KilledJob:
    """The leftovers of a killed job, and the outcome of ``resume`` on them."""

    data: DataDir
    job_id: str
    before: dict[str, Any]
    """The results document read right after the kill."""

    temp_folders: list[Path]
    """The temporary folders, with the Chrome profiles, of the audits in flight."""

    left_behind: list[psutil.Process]
    """Processes of the killed lhfleet's audits that outlived it."""

    resumed: subprocess.CompletedProcess[str]
    survivors: list[psutil.Process]
    """Processes of ``left_behind`` still running after ``resume`` exited."""

    naming_folders: list[psutil.Process]
    """Processes whose command line contains the data folder or a temporary folder
    once ``resume`` exited."""

    @property
    def after(self) -> dict[str, Any]:
        return json_document(self.resumed.stdout)

    def runs(self, document: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {run["id"]: run for entry in document["urls"] for run in entry["runs"]}


def json_document(text: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(text)
    return document


def wait_for(
    check: Callable[[], T | None],
    driver: subprocess.Popen[bytes],
    driver_log: Path,
    description: str,
) -> T:
    """Return ``check()`` once it is truthy, while ``driver`` keeps running."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while time.monotonic() < deadline:
        if driver.poll() is not None:
            raise AssertionError(
                f"lhfleet run exited with {driver.returncode} before {description}: "
                + driver_log.read_text(encoding="utf-8", errors="replace")
            )
        value = check()
        if value:
            return value
        time.sleep(POLL_SECONDS)
    raise AssertionError(f"no {description} within {SETTLE_TIMEOUT:g} s")


def created_job(data: DataDir) -> str | None:
    job_ids = data.stored_job_ids()
    return job_ids[0] if job_ids else None


def settled_count(data: DataDir, job_id: str) -> int:
    counts = data.stored_counts(job_id)
    return counts["succeeded"] + counts["failed"]


def temp_folders(data: DataDir) -> list[Path]:
    """Return the temporary folders that the audits' work folders point at."""
    folders = []
    for work_folder in data.work_folders():
        pointer = work_folder / "tempdir"
        if pointer.is_file():
            folders.append(Path(pointer.read_text(encoding="utf-8").strip()))
    return folders


def kill_survivors(processes: list[psutil.Process]) -> None:
    """Kill, by pid, audit processes that this test started and lhfleet left."""
    for process in still_running(processes):
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(processes, timeout=5)


@pytest.fixture(scope="module")
def killed(
    page_server: PageServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KilledJob]:
    folder = tmp_path_factory.mktemp("resume").resolve()
    data = DataDir(folder / "data")
    urls = [page_server.url("/?case=resume"), page_server.url("/second.html")]
    command = data.command("run", *urls, "--runs", "2", *AUDIT_OPTIONS)
    driver_log = folder / "run.stderr"
    with driver_log.open("wb") as stderr:
        driver = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
    markers: list[str] = [str(data.path)]
    left_behind: list[psutil.Process] = []
    try:
        job_id = wait_for(
            lambda: created_job(data), driver, driver_log, "a job in the store"
        )
        wait_for(
            lambda: settled_count(data, job_id), driver, driver_log, "a settled run"
        )
        audits = psutil.Process(driver.pid).children(recursive=True)
        driver.send_signal(signal.SIGKILL)
        driver.wait()

        folders = temp_folders(data)
        markers += [str(folder) for folder in folders]
        left_behind = still_running(audits + processes_naming(*markers))
        before = data.read_json("results", job_id, "--json")

        resumed = data.run(
            "resume", job_id, "--json", "--concurrency", "2", timeout=JOB_TIMEOUT
        )
        survivors = still_running(left_behind)
        naming_folders = processes_naming(*markers)
        yield KilledJob(
            data,
            job_id,
            before,
            folders,
            left_behind,
            resumed,
            survivors,
            naming_folders,
        )
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        kill_survivors(left_behind + processes_naming(*markers))


def test_kill_left_job_unfinished(killed: KilledJob) -> None:
    assert killed.before["job"]["state"] == "running"
    assert killed.before["job"]["counts"]["pending"] > 0


def test_kill_left_audits_running(killed: KilledJob) -> None:
    assert killed.left_behind != []
    assert killed.temp_folders != []


def test_resume_exits_zero(killed: KilledJob) -> None:
    assert killed.resumed.returncode == 0, killed.resumed.stderr


def test_resume_settles_every_run(killed: KilledJob) -> None:
    job = killed.after["job"]
    counts = job["counts"]
    assert job["state"] == "completed"
    assert counts["pending"] == 0
    assert counts["succeeded"] + counts["failed"] == counts["total"]


def test_resume_counts_each_run_once(killed: KilledJob) -> None:
    counts = killed.after["job"]["counts"]
    states = [run["state"] for run in killed.runs(killed.after).values()]
    assert counts["total"] == 4
    assert counts["succeeded"] == states.count("succeeded")
    assert counts["failed"] == states.count("failed")


def test_resumed_runs_succeed(killed: KilledJob) -> None:
    for run_id, run in killed.runs(killed.after).items():
        assert run["state"] == "succeeded", run_id
        assert run["attempts"] == 1, run_id


def test_resume_keeps_settled_runs(killed: KilledJob) -> None:
    after = killed.runs(killed.after)
    settled = {
        run_id: run
        for run_id, run in killed.runs(killed.before).items()
        if run["state"] in SETTLED
    }
    assert settled != {}
    for run_id, run in settled.items():
        assert after[run_id]["finished_at"] == run["finished_at"], run_id
        assert after[run_id]["report_json"] == run["report_json"], run_id
        assert after[run_id]["report_html"] == run["report_html"], run_id
        assert after[run_id]["attempts"] == run["attempts"], run_id


def test_succeeded_runs_have_reports(killed: KilledJob) -> None:
    for run_id, run in killed.runs(killed.after).items():
        if run["state"] == "succeeded":
            assert Path(run["report_json"]).is_file(), run_id
            assert Path(run["report_html"]).is_file(), run_id


def test_resume_stops_left_audits(killed: KilledJob) -> None:
    assert [process.pid for process in killed.survivors] == []


def test_resume_leaves_no_browser(killed: KilledJob) -> None:
    assert [process.pid for process in killed.naming_folders] == []


def test_resume_removes_work_folders(killed: KilledJob) -> None:
    assert killed.data.work_folders() == []


def test_resume_removes_temp_folders(killed: KilledJob) -> None:
    assert [folder for folder in killed.temp_folders if folder.exists()] == []


def test_resume_writes_summary(killed: KilledJob) -> None:
    summary = killed.data.reports / killed.job_id / "results.json"
    assert json_document(summary.read_text(encoding="utf-8")) == killed.after
