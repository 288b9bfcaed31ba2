"""Calibration, contended runs and the new keys of the results document."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lhfleet import service
from lhfleet.calibrate import (
    Calibration,
    calibration_path,
    load_calibration,
    save_calibration,
)
from lhfleet.models import JobSettings, RunState
from lhfleet.reports.local import LocalReportStore
from lhfleet.results import url_document
from tests.analysis.conftest import RealJobs, make_run


def calibration(host: str, figure: float) -> Calibration:
    return Calibration(
        host, figure, [figure], "2026-01-01T00:00:00+00:00", "13.5.0", 2, 5.0
    )


def test_calibration_round_trip(tmp_path: Path) -> None:
    save_calibration(tmp_path, calibration("box", 1500.0))
    assert load_calibration(tmp_path, "box") == calibration("box", 1500.0)


def test_calibration_keeps_other_hosts(tmp_path: Path) -> None:
    save_calibration(tmp_path, calibration("one", 1500.0))
    save_calibration(tmp_path, calibration("two", 900.0))
    loaded = load_calibration(tmp_path, "one")
    assert loaded is not None
    assert loaded.benchmark_index == 1500.0


def test_calibration_of_unknown_host_is_none(tmp_path: Path) -> None:
    save_calibration(tmp_path, calibration("one", 1500.0))
    assert load_calibration(tmp_path, "other") is None


def test_unreadable_calibration_is_ignored(tmp_path: Path) -> None:
    calibration_path(tmp_path).write_text("{not json", encoding="utf-8")
    assert load_calibration(tmp_path, "box") is None


def test_busy_calibration() -> None:
    busy = Calibration("box", 900.0, [900.0], "", None, 2, 60.0)
    assert busy.busy


def _document(settings: JobSettings, tmp_path: Path) -> dict:  # type: ignore[type-arg]
    runs = [
        make_run(0, {"performance": 0.9}, {"lcp": 1000.0}, benchmark=1500),
        make_run(1, {"performance": 0.5}, {"lcp": 3000.0}, benchmark=900),
        make_run(2, state=RunState.FAILED),
    ]
    return url_document(runs, LocalReportStore(tmp_path), settings)


def test_document_marks_contended_runs(tmp_path: Path) -> None:
    settings = JobSettings(host_benchmark_index=1400.0)
    entry = _document(settings, tmp_path)
    assert [run["contended"] for run in entry["runs"]] == [False, True, None]
    assert entry["contended_runs"] == 1


def test_document_without_calibration_cannot_tell(tmp_path: Path) -> None:
    entry = _document(JobSettings(), tmp_path)
    assert {run["contended"] for run in entry["runs"]} == {None}


def test_document_uses_job_rule(tmp_path: Path) -> None:
    entry = _document(JobSettings(representative="lcp"), tmp_path)
    assert entry["representative_rule"] == "lcp"
    assert entry["representative_run"] == "job-0-0"


def test_document_spread_and_noise(tmp_path: Path) -> None:
    entry = _document(JobSettings(), tmp_path)
    assert entry["noisy"]
    assert entry["spread"]["target"] == "performance:cv=0.05"
    assert entry["statistics"]["lcp"]["max"] == 3000.0


def test_document_adaptive_summary(tmp_path: Path) -> None:
    entry = _document(JobSettings(runs=2, max_runs=3), tmp_path)
    assert entry["adaptive"] == {
        "min_runs": 2,
        "max_runs": 3,
        "runs": 3,
        "target_met": False,
    }


def test_old_settings_load_with_defaults() -> None:
    old = {"runs": 3, "preset": "mobile", "categories": ["seo"], "timeout": 60,
           "chrome_flags": [], "retries": 1}  # fmt: skip
    settings = JobSettings.from_dict(old)
    assert (settings.representative, settings.max_runs) == ("lighthouse", None)


@pytest.mark.lighthouse
def test_calibrate_stores_host_figure(real_jobs: RealJobs) -> None:
    assert real_jobs.calibrate_run.returncode == 0, real_jobs.calibrate_run.stderr
    stored = json.loads(
        calibration_path(real_jobs.data_dir).read_text(encoding="utf-8")
    )
    (entry,) = stored.values()
    assert entry["benchmark_index"] > 0


@pytest.mark.lighthouse
def test_adaptive_job_runs_until_max(real_jobs: RealJobs) -> None:
    assert real_jobs.adaptive_run.returncode == 0, real_jobs.adaptive_run.stderr[-2000:]
    document = json.loads(real_jobs.adaptive_run.stdout)
    (entry,) = document["urls"]
    assert entry["adaptive"] == {
        "min_runs": 2,
        "max_runs": 3,
        "runs": 3,
        "target_met": False,
    }
    assert document["job"]["counts"]["total"] == 3


@pytest.mark.lighthouse
def test_adaptive_job_completes_once(real_jobs: RealJobs) -> None:
    log = (real_jobs.data_dir / "lhfleet.log").read_text(encoding="utf-8")
    assert log.count(f"job {real_jobs.adaptive}: completed") == 1


@pytest.mark.lighthouse
def test_runs_marked_against_calibration(real_jobs: RealJobs) -> None:
    document = json.loads(real_jobs.adaptive_run.stdout)
    assert document["job"]["settings"]["host_benchmark_index"] > 0
    flags = {run["contended"] for run in document["urls"][0]["runs"]}
    assert flags <= {True, False}


@pytest.mark.lighthouse
def test_config_defaults_reach_the_job(real_jobs: RealJobs) -> None:
    workspace = service.Workspace.open(real_jobs.data_dir)
    settings = workspace.store.get_job(real_jobs.first).settings
    assert (settings.runs, settings.categories, settings.retries) == (
        3,
        ("performance",),
        1,
    )
