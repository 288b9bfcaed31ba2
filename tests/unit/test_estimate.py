"""Duration estimates from the figures of the jobs a host ran."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from lhfleet.calibrate import host_name
from lhfleet.cli import main
from lhfleet.estimate import (
    DEFAULT_RUN_SECONDS,
    Figures,
    estimate,
    job_figures,
    load_figures,
    record_job,
)
from lhfleet.models import Run, RunState


def timed_run(index: int, total: float, window: float, wait: float = 0.0) -> Run:
    return Run(
        id=f"job-0-{index}",
        job_id="job",
        url_index=0,
        url="http://a.test/",
        index=index,
        state=RunState.SUCCEEDED,
        attempts=1,
        conditions={"timings": {"total": total, "window": window, "windowWait": wait}},
    )


def figures(run: float, window: float) -> Figures:
    return Figures(run, window, 10, "2026-01-01T00:00:00+00:00")


def test_windows_bound_the_throughput_of_many_slots() -> None:
    measured = figures(run=10.0, window=5.0)
    assert estimate(100, 1, measured).seconds == pytest.approx(1000.0)
    assert estimate(100, 2, measured).seconds == pytest.approx(500.0)
    assert estimate(100, 8, measured).seconds == pytest.approx(500.0)


def test_auto_settles_where_the_window_is_full() -> None:
    guess = estimate(30, "auto", figures(run=9.0, window=3.0))
    assert guess.concurrency == min(3, guess.concurrency)
    assert guess.seconds >= 30 * 3.0


def test_job_figures_leave_out_window_waits_and_untimed_runs() -> None:
    runs = [
        timed_run(0, total=12.0, window=5.0, wait=2.0),
        timed_run(1, total=10.0, window=4.0),
        timed_run(2, total=14.0, window=6.0, wait=4.0),
        Run("job-0-3", "job", 0, "http://a.test/", 3, RunState.FAILED, 1),
    ]
    assert job_figures(runs) == (10.0, 5.0, 3)
    assert job_figures(runs[3:]) is None


def test_recorded_jobs_merge_into_the_host_profile(tmp_path: Path) -> None:
    record_job(tmp_path, "mobile", [timed_run(0, 10.0, 4.0), timed_run(1, 10.0, 4.0)])
    record_job(tmp_path, "mobile", [timed_run(0, 20.0, 8.0), timed_run(1, 20.0, 8.0)])
    merged = load_figures(tmp_path, "mobile")
    assert merged is not None
    assert merged.runs == 4
    assert merged.run_seconds == pytest.approx(15.0)
    assert merged.window_seconds == pytest.approx(6.0)
    assert load_figures(tmp_path, "desktop") is None
    stored = json.loads((tmp_path / "host-profile.json").read_text())
    assert set(stored) == {host_name()}


def test_an_unreadable_profile_counts_as_none(tmp_path: Path) -> None:
    (tmp_path / "host-profile.json").write_text("{not json")
    assert load_figures(tmp_path, "mobile") is None
    assert record_job(tmp_path, "mobile", [timed_run(0, 10.0, 4.0)]) is not None
    assert load_figures(tmp_path, "mobile") is not None


def test_dry_run_prints_the_estimate(tmp_path: Path) -> None:
    args = ["run", "--dry-run", "http://a.test/", "http://b.test/", "--runs", "3"]
    args += ["--concurrency", "1", "--data-dir", str(tmp_path)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    text = " ".join(first.stderr.split())
    assert "for 6 runs, 1 at a time" in text
    assert f"assumes {DEFAULT_RUN_SECONDS:g} s a run" in text
    record_job(tmp_path, "mobile", [timed_run(0, 20.0, 5.0)])
    second = CliRunner().invoke(main, args)
    text = " ".join(second.stderr.split())
    assert "about 2 min for 6 runs" in text
    assert "from 1 run measured on this host: 20.0 s a run" in text
