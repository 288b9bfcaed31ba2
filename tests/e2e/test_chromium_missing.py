"""``lhfleet doctor`` and ``lhfleet run`` when Chromium is missing or does not start."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.conftest import PageServer
from tests.e2e.harness import (
    AUDIT_OPTIONS,
    JOB_TIMEOUT,
    DataDir,
    environment,
    flat,
    lhfleet,
)

STAND_IN_BROWSER = """#!/bin/sh
# A stand-in for a broken Chromium: it reports a version, then fails to start.
if [ "$1" = "--version" ]; then
    echo "Chromium 140.0.0.0 stand-in"
    exit 0
fi
echo "stand-in browser: cannot start" >&2
exit 1
"""


def no_chromium(tmp_path: Path, cause: str) -> dict[str, str]:
    """Return an environment where lhfleet finds no Chromium, for one of ``CAUSES``."""
    if cause == "CHROME_PATH missing":
        return environment(CHROME_PATH=str(tmp_path / "no-such-chromium"))
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    return environment(CHROME_PATH=None, PATH=str(empty))


CAUSES = ["CHROME_PATH missing", "none on PATH"]


def test_doctor_passes_with_chromium() -> None:
    completed = lhfleet("doctor")
    assert completed.returncode == 0, completed.stdout


@pytest.mark.parametrize("cause", CAUSES)
def test_doctor_without_chromium_names_fix(cause: str, tmp_path: Path) -> None:
    completed = lhfleet("doctor", env=no_chromium(tmp_path, cause))
    output = flat(completed.stdout)
    assert completed.returncode == 3, completed.stdout
    assert "FAIL chromium" in output
    assert "apt-get install -y chromium" in output
    assert "set CHROME_PATH" in output


def test_doctor_json_without_chromium(tmp_path: Path) -> None:
    env = no_chromium(tmp_path, "CHROME_PATH missing")
    completed = lhfleet("doctor", "--json", env=env)
    checks = {check["name"]: check for check in json.loads(completed.stdout)}
    assert checks["chromium"]["ok"] is False
    assert "CHROME_PATH" in checks["chromium"]["fix"]
    assert checks["python"]["ok"] is True


@pytest.mark.parametrize("cause", CAUSES)
def test_run_without_chromium_queues_nothing(
    cause: str, page_server: PageServer, tmp_path: Path
) -> None:
    data = DataDir(tmp_path / "data")
    url = page_server.url("/?case=run-without-chromium")
    env = no_chromium(tmp_path, cause)
    completed = data.run("run", url, "--runs", "3", *AUDIT_OPTIONS, env=env)
    stderr = flat(completed.stderr)
    assert completed.returncode == 3, completed.stderr
    assert stderr.count("Error:") == 1
    assert "CHROME_PATH" in stderr
    assert data.stored_job_ids() == []
    assert page_server.requests_to("/?case=run-without-chromium") == []


@pytest.fixture
def stand_in_browser(tmp_path: Path) -> Path:
    path = tmp_path / "chromium"
    path.write_text(STAND_IN_BROWSER, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.lighthouse
def test_run_with_broken_chromium_stops_once(
    stand_in_browser: Path, page_server: PageServer, tmp_path: Path
) -> None:
    data = DataDir(tmp_path / "data")
    env = environment(CHROME_PATH=str(stand_in_browser))
    completed = data.run(
        "run",
        page_server.url("/?case=broken-chromium"),
        "--runs",
        "3",
        *AUDIT_OPTIONS,
        env=env,
        timeout=JOB_TIMEOUT,
    )
    stderr = flat(completed.stderr)
    (job,) = data.jobs()
    runs = data.read_json("results", job["id"], "--json")["urls"][0]["runs"]
    assert completed.returncode == 3, completed.stderr
    assert stderr.count("Error:") == 1
    assert "Chrome failed to launch" in stderr
    assert "lhfleet doctor" in stderr
    assert f"lhfleet resume {job['id']}" in stderr
    assert job["counts"] == {"total": 3, "succeeded": 0, "failed": 0, "pending": 3}
    assert [run["state"] for run in runs] == ["queued"] * 3
    # Each slot tries a fresh Chrome once before it stops the job, and the
    # attempt that stopped it is given back.
    assert all(run["attempts"] <= 1 for run in runs)
    assert data.work_folders() == []
