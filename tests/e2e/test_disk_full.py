"""A full disk pauses the job with exit 4; ``resume`` finishes it given room."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PageServer
from tests.e2e.harness import DataDir, flat


@pytest.fixture
def tiny_reports(tmp_path: Path) -> Iterator[DataDir]:
    """Give a data folder whose reports folder is a 64 KiB tmpfs."""
    data = DataDir(tmp_path / "data")
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    data.path.mkdir()
    data.reports.symlink_to(mount_point)
    yield data
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.lighthouse
def test_disk_full_pauses_then_resumes(
    tiny_reports: DataDir, page_server: PageServer
) -> None:
    data = tiny_reports
    url = page_server.url("/index.html")
    common = ("--categories", "performance", "--concurrency", "1")

    paused = data.run("run", url, "--runs", "1", *common)
    job_id = data.stored_job_ids()[0]
    counts = data.stored_counts(job_id)

    assert paused.returncode == 4, paused.stderr
    assert "Free disk space" in flat(paused.stderr)
    assert f"lhfleet resume {job_id}" in flat(paused.stderr)
    assert counts == {"total": 1, "succeeded": 0, "failed": 0}
    assert data.work_folders() == []

    subprocess.run(
        ["mount", "-o", "remount,size=64m", str(data.reports.resolve())], check=True
    )
    resumed = data.run("resume", job_id, "--concurrency", "1")

    assert resumed.returncode == 0, resumed.stderr
    assert data.stored_counts(job_id) == {"total": 1, "succeeded": 1, "failed": 0}
