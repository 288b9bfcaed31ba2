"""lhfleet compare: the verdict on hand-made samples, and on real jobs."""

from __future__ import annotations

import json

import pytest

from lhfleet.compare import (
    IMPROVED,
    INSUFFICIENT,
    REGRESSED,
    UNCHANGED,
    CompareOptions,
    compare_jobs,
    compare_samples,
    comparison_markdown,
    format_change,
    median_interval,
)
from lhfleet.lhr import ReportFacts
from lhfleet.models import JobSecrets, JobSettings
from lhfleet.store.sql import SqlJobStore
from tests.analysis.conftest import RealJobs, lhfleet

OPTIONS = CompareOptions()


def test_slower_tbt_is_a_regression() -> None:
    change = compare_samples("tbt", [0, 0, 0], [1900, 2000, 2100], OPTIONS)
    assert change.verdict == REGRESSED
    assert change.difference == 2000


def test_lower_score_is_a_regression() -> None:
    a = [0.9, 0.92, 0.91, 0.9, 0.93]
    b = [0.8, 0.82, 0.79, 0.85, 0.81]
    assert compare_samples("performance", a, b, OPTIONS).verdict == REGRESSED


def test_higher_score_is_an_improvement() -> None:
    a = [0.8, 0.82, 0.79, 0.85, 0.81]
    b = [0.9, 0.92, 0.91, 0.9, 0.93]
    assert compare_samples("performance", a, b, OPTIONS).verdict == IMPROVED


def test_overlapping_samples_are_unchanged() -> None:
    change = compare_samples("fcp", [812, 815, 830], [820, 818, 825], OPTIONS)
    assert change.verdict == UNCHANGED


def test_significant_change_under_floor_is_unchanged() -> None:
    # Separated samples, but 10 ms of FCP is under the 50 ms floor.
    change = compare_samples("fcp", [800, 801, 802], [810, 811, 812], OPTIONS)
    assert change.interval is not None
    assert change.interval[0] > 0
    assert change.verdict == UNCHANGED


def test_relative_threshold_applies_above_floor() -> None:
    change = compare_samples("lcp", [4000, 4010, 4020], [4100, 4110, 4120], OPTIONS)
    assert change.threshold == pytest.approx(200.5)
    assert change.verdict == UNCHANGED


def test_single_run_is_too_few() -> None:
    change = compare_samples("lcp", [1000], [2000, 2100], OPTIONS)
    assert change.verdict == INSUFFICIENT
    assert change.difference == 1050


def test_empty_sample_is_too_few() -> None:
    change = compare_samples("lcp", [], [2000, 2100], OPTIONS)
    assert change.verdict == INSUFFICIENT
    assert change.difference is None


def test_constant_samples_give_exact_interval() -> None:
    assert median_interval([1.0, 1.0], [0.5, 0.5], 0.95) == (-0.5, -0.5)


def test_interval_is_reproducible() -> None:
    a, b = [10.0, 30.0, 20.0, 25.0], [15.0, 35.0, 40.0, 22.0]
    assert median_interval(a, b, 0.95) == median_interval(a, b, 0.95)


def test_format_change_signs() -> None:
    assert format_change("lcp", 120.0) == "+120"
    assert format_change("performance", -0.05) == "−5"
    assert format_change("tbt", 0.0) == "0"


def _job(store: SqlJobStore, urls: list[str], lcps: list[list[float]]) -> str:
    job = store.create_job(
        JobSettings(runs=3, categories=("performance",)), JobSecrets(), urls
    )
    for url_index, values in enumerate(lcps):
        for index, value in enumerate(values):
            run_id = f"{job.id}-{url_index}-{index}"
            claimed = store.claim(run_id, "w", 60, now=1)
            assert claimed is not None
            facts = ReportFacts(None, None, {"performance": 0.9}, {"lcp": value})
            store.record_success(run_id, "w", facts, "r.json", "r.html", now=2)
    return job.id


def test_compare_jobs_lists_urls_of_one_job(sql_store: SqlJobStore) -> None:
    first = _job(
        sql_store, ["http://a.test/", "http://b.test/"], [[1, 2, 3], [4, 5, 6]]
    )
    second = _job(
        sql_store, ["http://b.test/", "http://c.test/"], [[4, 5, 6], [1, 1, 1]]
    )
    comparison = compare_jobs(
        sql_store, first, second, CompareOptions(metrics=("lcp",))
    )
    assert [url.url for url in comparison.urls] == ["http://b.test/"]
    assert comparison.only_in_a == ["http://a.test/"]
    assert comparison.only_in_b == ["http://c.test/"]


def test_compare_jobs_finds_regression(sql_store: SqlJobStore) -> None:
    first = _job(sql_store, ["http://a.test/"], [[1000, 1010, 1020]])
    second = _job(sql_store, ["http://a.test/"], [[3000, 3010, 3020]])
    comparison = compare_jobs(sql_store, first, second)
    assert [change.key for _, change in comparison.regressions] == ["lcp"]
    assert "**regressed**" in comparison_markdown(comparison)


@pytest.mark.lighthouse
def test_same_pages_show_no_significant_change(real_jobs: RealJobs) -> None:
    completed = lhfleet(
        "compare", real_jobs.first, real_jobs.second, "--format", "json",
        "--data-dir", str(real_jobs.data_dir),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    document = json.loads(completed.stdout)
    assert document["regressions"] == 0
    assert len(document["urls"]) == 2


@pytest.mark.lighthouse
def test_slowed_page_is_a_regression(real_jobs: RealJobs) -> None:
    completed = lhfleet(
        "compare", real_jobs.first, real_jobs.slowed, "--format", "json",
        "--data-dir", str(real_jobs.data_dir),
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    document = json.loads(completed.stdout)
    (url,) = document["urls"]
    changes = {change["metric"]: change for change in url["metrics"]}
    assert url["url"].endswith("/work.html")
    assert changes["tbt"]["verdict"] == REGRESSED, changes["tbt"]
    assert changes["performance"]["verdict"] == REGRESSED, changes["performance"]
    assert document["only_in_a"][0].endswith("/static.html")


@pytest.mark.lighthouse
def test_compare_markdown_names_regression(real_jobs: RealJobs) -> None:
    completed = lhfleet(
        "compare", real_jobs.first, real_jobs.slowed, "--format", "markdown",
        "--data-dir", str(real_jobs.data_dir),
    )  # fmt: skip
    assert completed.returncode == 1
    assert "| tbt |" in completed.stdout
    assert "Only in job A:" in completed.stdout
