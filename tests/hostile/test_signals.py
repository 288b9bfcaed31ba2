"""lhfleet killed mid-job: what it leaves, and what ``lhfleet resume`` cleans up."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hostile.conftest import (
    Finished,
    audit_processes,
    chrome_browsers,
    finish,
    kill_audit_processes,
    leftover_work_dirs,
    lighthouse_profiles,
    run_lhfleet,
    start,
    wait_for_chromes,
)
from tests.hostile.server import HostileSite

pytestmark = pytest.mark.lighthouse


@dataclass
class Stopped:
    """A job whose lhfleet was signalled while two audits were loading pages."""

    data_dir: Path
    job_id: str
    temp_dirs: set[Path]
    chromes_before: int
    chromes_after: int
    work_dirs_after: int
    profiles_after: int
    process: subprocess.Popen[str]
    started: float


def stop_mid_job(site: HostileSite, data_dir: Path, number: signal.Signals) -> Stopped:
    """Start two slow audits, send ``number`` to lhfleet, and count what is left."""
    urls = [site.url(f"/slow-once/{number.name}-{index}") for index in range(2)]
    started = time.monotonic()
    process = start(
        data_dir,
        *("run", *urls, "--runs", "1", "--retries", "0", "--timeout", "90"),
        *("--categories", "performance", "--concurrency", "2", "--json"),
    )
    browsers, temps = wait_for_chromes(data_dir, 2)
    process.send_signal(number)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    job_id = json.loads(run_lhfleet(data_dir, "jobs", "--json").stdout)[0]["id"]
    return Stopped(
        data_dir=data_dir,
        job_id=job_id,
        temp_dirs=temps,
        chromes_before=len(browsers),
        chromes_after=len(chrome_browsers(data_dir, temps)),
        work_dirs_after=len(leftover_work_dirs(data_dir)),
        profiles_after=len(lighthouse_profiles(temps)),
        process=process,
        started=started,
    )


@pytest.fixture(scope="module", params=[signal.SIGINT, signal.SIGTERM])
def interrupted(
    request: pytest.FixtureRequest,
    site: HostileSite,
    tmp_path_factory: pytest.TempPathFactory,
) -> Stopped:
    number: signal.Signals = request.param
    return stop_mid_job(site, tmp_path_factory.mktemp(number.name), number)


def test_interrupt_exits_130(interrupted: Stopped) -> None:
    assert interrupted.process.returncode == 130


def test_interrupt_had_two_chromes(interrupted: Stopped) -> None:
    assert interrupted.chromes_before == 2


def test_interrupt_kills_chrome(interrupted: Stopped) -> None:
    assert interrupted.chromes_after == 0


def test_interrupt_leaves_no_process(interrupted: Stopped) -> None:
    assert audit_processes(interrupted.data_dir, interrupted.temp_dirs) == []


def test_interrupt_removes_work_dirs(interrupted: Stopped) -> None:
    assert interrupted.work_dirs_after == 0


def test_interrupt_removes_profiles(interrupted: Stopped) -> None:
    assert interrupted.profiles_after == 0
    assert [temp for temp in interrupted.temp_dirs if temp.exists()] == []


def test_interrupt_requeues_runs(interrupted: Stopped) -> None:
    finished = run_lhfleet(interrupted.data_dir, "status", interrupted.job_id, "--json")
    counts = json.loads(finished.stdout)["counts"]
    assert counts["pending"] == 2


@dataclass
class Killed:
    stopped: Stopped
    resumed: Finished
    processes_after_resume: int


@pytest.fixture(scope="module")
def killed(site: HostileSite, tmp_path_factory: pytest.TempPathFactory) -> Killed:
    """SIGKILL lhfleet mid-job, then resume the job right away."""
    stopped = stop_mid_job(site, tmp_path_factory.mktemp("SIGKILL"), signal.SIGKILL)
    started = time.monotonic()
    resume = start(stopped.data_dir, "resume", stopped.job_id, "--json")
    resumed = finish(resume, started)
    remaining = audit_processes(stopped.data_dir, stopped.temp_dirs)
    return Killed(stopped, resumed, len(remaining))


def test_sigkill_leaves_chrome(killed: Killed) -> None:
    """Lighthouse runs in its own session, so its Chrome outlives a killed lhfleet."""
    assert killed.stopped.chromes_after == 2


def test_sigkill_leaves_work_dirs(killed: Killed) -> None:
    assert killed.stopped.work_dirs_after == 2


def test_sigkill_resume_finishes(killed: Killed) -> None:
    assert killed.resumed.exit_code == 0
    assert killed.resumed.document["job"]["counts"]["succeeded"] == 2


def test_sigkill_resume_kills_orphans(killed: Killed) -> None:
    assert killed.processes_after_resume == 0


def test_sigkill_resume_removes_work_dirs(killed: Killed) -> None:
    assert leftover_work_dirs(killed.stopped.data_dir) == []


def test_sigkill_resume_removes_profiles(killed: Killed) -> None:
    assert lighthouse_profiles(killed.stopped.temp_dirs) == []
    assert [temp for temp in killed.stopped.temp_dirs if temp.exists()] == []


@dataclass
class Orphaned:
    """An interrupt sent to lhfleet after the reader of its output went away."""

    exit_code: int
    processes_left: int
    work_dirs_left: int


@pytest.fixture(scope="module")
def interrupted_without_stderr(
    site: HostileSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Orphaned]:
    """Close lhfleet's output pipes, as a parent that died would, then SIGINT it."""
    data_dir = tmp_path_factory.mktemp("closed-stderr")
    urls = [site.url(f"/slow-once/closed-stderr-{index}") for index in range(2)]
    process = start(
        data_dir,
        *("run", *urls, "--runs", "1", "--timeout", "90"),
        *("--categories", "performance", "--concurrency", "2"),
    )
    _, temps = wait_for_chromes(data_dir, 2)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    time.sleep(1)
    yield Orphaned(
        exit_code=process.returncode,
        processes_left=len(audit_processes(data_dir, temps)),
        work_dirs_left=len(leftover_work_dirs(data_dir)),
    )
    kill_audit_processes(data_dir, temps)


def test_interrupt_closed_stderr_exits_130(
    interrupted_without_stderr: Orphaned,
) -> None:
    assert interrupted_without_stderr.exit_code == 130


def test_interrupt_closed_stderr_kills_audits(
    interrupted_without_stderr: Orphaned,
) -> None:
    assert interrupted_without_stderr.processes_left == 0


def test_interrupt_closed_stderr_removes_dirs(
    interrupted_without_stderr: Orphaned,
) -> None:
    assert interrupted_without_stderr.work_dirs_left == 0
