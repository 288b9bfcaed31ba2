"""Work folders and their processes are removed, and only those of exited owners."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from lhfleet.auditor import (
    OWNER_FILE,
    TEMP_FILE,
    TEMP_PREFIX,
    cleanup_workdir,
    sweep_scratch,
)


def start_holder(workdir: Path) -> subprocess.Popen[bytes]:
    """Start a process that names ``workdir`` on its command line, as Chrome does."""
    (workdir / "tmp").mkdir(parents=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
            f"--user-data-dir={workdir}/tmp/p",
        ],
        start_new_session=True,
    )


def test_cleanup_kills_holder_and_removes_folder(tmp_path: Path) -> None:
    workdir = tmp_path / "lhfleet-run-a"
    holder = start_holder(workdir)
    time.sleep(0.2)
    killed = cleanup_workdir(workdir)
    holder.wait(timeout=5)
    assert killed == 1
    assert not psutil.pid_exists(holder.pid)
    assert not workdir.exists()


def test_sweep_keeps_live_owners(tmp_path: Path) -> None:
    gone = tmp_path / "lhfleet-run-gone"
    alive = tmp_path / "lhfleet-run-alive"
    holders = [start_holder(gone), start_holder(alive)]
    (gone / OWNER_FILE).write_text("owner-gone")
    (alive / OWNER_FILE).write_text("owner-alive")
    time.sleep(0.2)

    swept = sweep_scratch(tmp_path, lambda owner: owner == "owner-gone")

    assert swept == 1
    assert not gone.exists()
    assert alive.exists()
    holders[0].wait(timeout=5)
    assert not psutil.pid_exists(holders[0].pid)
    assert holders[1].poll() is None
    holders[1].kill()
    holders[1].wait()


def test_cleanup_kills_processes_of_temp_folder(tmp_path: Path) -> None:
    workdir = tmp_path / "lhfleet-run-b"
    workdir.mkdir()
    temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX))
    (workdir / TEMP_FILE).write_text(str(temp))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
            f"--user-data-dir={temp}/p",
        ],
        start_new_session=True,
    )
    time.sleep(0.2)

    killed = cleanup_workdir(workdir)

    holder.wait(timeout=5)
    assert killed == 1
    assert not temp.exists()
    assert not workdir.exists()
