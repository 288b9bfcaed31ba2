"""A job of two URLs, two runs each, through ``lhfleet run`` and the read commands."""

from __future__ import annotations

import csv
import io
import itertools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import PageServer
from tests.e2e.harness import (
    AUDIT_OPTIONS,
    JOB_TIMEOUT,
    METRIC_KEYS,
    RUN_STATES,
    DataDir,
    read_report,
)

pytestmark = pytest.mark.lighthouse

JOB_KEYS = {"id", "state", "counts"}
URL_KEYS = {"url", "runs", "representative_run", "median"}
RUN_KEYS = {
    "id",
    "index",
    "state",
    "attempts",
    "error_code",
    "error_message",
    "warnings",
    "scores",
    "metrics",
    "benchmark_index",
    "lighthouse_version",
    "final_url",
    "report_json",
    "report_html",
}


@dataclass(frozen=True)
class FinishedJob:
    data: DataDir
    urls: list[str]
    completed: subprocess.CompletedProcess[str]

    @property
    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.completed.stdout)
        return document

    @property
    def job_id(self) -> str:
        job_id: str = self.document["job"]["id"]
        return job_id

    def runs(self) -> list[dict[str, Any]]:
        return [run for entry in self.document["urls"] for run in entry["runs"]]


@pytest.fixture(scope="module")
def finished(
    page_server: PageServer, tmp_path_factory: pytest.TempPathFactory
) -> FinishedJob:
    data = DataDir(tmp_path_factory.mktemp("run") / "data")
    urls = [page_server.url("/"), page_server.url("/second.html")]
    completed = data.run(
        "run", *urls, "--runs", "2", *AUDIT_OPTIONS, "--json", timeout=JOB_TIMEOUT
    )
    return FinishedJob(data, urls, completed)


def test_run_exits_zero(finished: FinishedJob) -> None:
    assert finished.completed.returncode == 0, finished.completed.stderr


def test_run_stdout_is_one_json_document(finished: FinishedJob) -> None:
    assert isinstance(json.loads(finished.completed.stdout), dict)


def test_run_progress_goes_to_stderr(finished: FinishedJob) -> None:
    stderr = finished.completed.stderr
    assert f"Job {finished.job_id}: 2 URLs × 2 runs = 4 runs" in stderr
    assert "4/4 runs" in stderr


def test_job_counts(finished: FinishedJob) -> None:
    job = finished.document["job"]
    assert JOB_KEYS - job.keys() == set()
    assert job["state"] == "completed"
    assert job["counts"] == {"total": 4, "succeeded": 4, "failed": 0, "pending": 0}


def test_urls_keep_order(finished: FinishedJob) -> None:
    listed = [entry["url"] for entry in finished.document["urls"]]
    assert listed == finished.urls


@pytest.mark.parametrize("position", [0, 1])
def test_url_entry_fields(finished: FinishedJob, position: int) -> None:
    entry = finished.document["urls"][position]
    run_ids = [run["id"] for run in entry["runs"]]
    assert URL_KEYS - entry.keys() == set()
    assert len(entry["runs"]) == 2
    assert entry["representative_run"] in run_ids
    assert METRIC_KEYS - entry["median"].keys() == set()
    assert entry["median"]["performance"] is not None


def test_run_fields(finished: FinishedJob) -> None:
    for run in finished.runs():
        assert RUN_KEYS - run.keys() == set(), run["id"]
        assert run["state"] in RUN_STATES, run["id"]


def test_runs_succeed_first_time(finished: FinishedJob) -> None:
    for run in finished.runs():
        assert run["state"] == "succeeded", run["error_message"]
        assert run["attempts"] == 1, run["id"]
        assert run["error_code"] is None, run["id"]
        assert run["error_message"] is None, run["id"]


def test_run_indexes_per_url(finished: FinishedJob) -> None:
    for entry in finished.document["urls"]:
        assert [run["index"] for run in entry["runs"]] == [0, 1]


def test_run_ids_unique(finished: FinishedJob) -> None:
    run_ids = [run["id"] for run in finished.runs()]
    assert len(set(run_ids)) == 4


def test_run_scores_by_category(finished: FinishedJob) -> None:
    for run in finished.runs():
        assert list(run["scores"]) == ["performance"], run["id"]
        assert 0 <= run["scores"]["performance"] <= 1, run["id"]


def test_run_metrics_by_key(finished: FinishedJob) -> None:
    for run in finished.runs():
        assert set(run["metrics"]) == METRIC_KEYS, run["id"]
        assert run["metrics"]["fcp"] > 0, run["id"]
        assert run["metrics"]["cls"] >= 0, run["id"]


def test_run_environment_facts(finished: FinishedJob) -> None:
    for run in finished.runs():
        assert run["benchmark_index"] > 0, run["id"]
        assert run["lighthouse_version"] == "13.5.0", run["id"]
        assert isinstance(run["warnings"], list), run["id"]


def test_run_final_url(finished: FinishedJob) -> None:
    for entry in finished.document["urls"]:
        for run in entry["runs"]:
            assert run["final_url"] == entry["url"], run["id"]


def test_report_paths_named_by_ids(finished: FinishedJob) -> None:
    folder = finished.data.reports.resolve() / finished.job_id
    for run in finished.runs():
        stem = f"{run['id']}.a{run['attempts']}.report"
        assert run["report_json"] == str(folder / f"{stem}.json.gz")
        assert run["report_html"] == str(folder / f"{stem}.html")


def test_report_names_leave_out_url(
    finished: FinishedJob, page_server: PageServer
) -> None:
    names = [path.name for path in finished.data.reports.rglob("*")]
    assert [name for name in names if "127.0.0.1" in name] == []
    assert [name for name in names if str(page_server.port) in name] == []
    assert [name for name in names if "second" in name] == []


def test_json_report_is_gzipped_result(finished: FinishedJob) -> None:
    for entry in finished.document["urls"]:
        for run in entry["runs"]:
            result = json.loads(read_report(Path(run["report_json"])))
            assert result["requestedUrl"] == entry["url"]
            assert result["lighthouseVersion"] == "13.5.0"
            assert result["categories"]["performance"]["score"] is not None


def test_html_report_shows_run(finished: FinishedJob) -> None:
    for entry in finished.document["urls"]:
        for run in entry["runs"]:
            html = Path(run["report_html"]).read_text(encoding="utf-8")
            assert "<!doctype html>" in html, run["id"]
            assert "<title>Lighthouse Report" in html, run["id"]
            assert f'"requestedUrl":"{entry["url"]}"' in html, run["id"]


def test_summary_written_on_completion(finished: FinishedJob) -> None:
    summary = finished.data.reports / finished.job_id / "results.json"
    assert json.loads(summary.read_text(encoding="utf-8")) == finished.document


def test_results_json_matches_run(finished: FinishedJob) -> None:
    document = finished.data.read_json("results", finished.job_id, "--format", "json")
    assert document == finished.document


def test_results_csv_row_per_run(finished: FinishedJob) -> None:
    completed = finished.data.run("results", finished.job_id, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(completed.stdout)))
    assert completed.returncode == 0, completed.stderr
    assert [row["run_id"] for row in rows] == [run["id"] for run in finished.runs()]
    assert {row["state"] for row in rows} == {"succeeded"}
    assert {row["job_id"] for row in rows} == {finished.job_id}
    assert all(row["score_performance"] for row in rows)
    assert all(row["lcp"] for row in rows)


def test_results_table_names_urls(finished: FinishedJob) -> None:
    completed = finished.data.run("results", finished.job_id, "--format", "table")
    assert completed.returncode == 0, completed.stderr
    assert finished.job_id in completed.stdout
    for url in finished.urls:
        assert url in completed.stdout


def test_status_json_is_job(finished: FinishedJob) -> None:
    status = finished.data.read_json("status", finished.job_id, "--json")
    assert status == finished.document["job"]


def test_jobs_json_lists_job(finished: FinishedJob) -> None:
    assert finished.data.jobs() == [finished.document["job"]]


def test_run_leaves_no_work_folders(finished: FinishedJob) -> None:
    assert finished.data.work_folders() == []


def test_measurement_windows_never_overlap(finished: FinishedJob) -> None:
    spans = sorted(run["conditions"]["window_span"] for run in finished.runs())
    assert len(spans) == 4
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end <= start, f"windows {spans} overlap"


def test_runs_record_what_they_ran_under(finished: FinishedJob) -> None:
    for run in finished.runs():
        conditions = run["conditions"]
        assert conditions["concurrency"] == 2
        assert conditions["concurrency_mode"] == "fixed"
        assert conditions["window_wait"] >= 0
        assert 0 <= conditions["window_cpu_percent"] <= 100
        assert conditions["load_average"] >= 0
        timings = conditions["timings"]
        assert 0 < timings["window"] < timings["total"]
        assert timings["launch"] > 0


def test_run_leaves_no_runner_processes(finished: FinishedJob) -> None:
    marker = str(finished.data.path)
    leftovers = [
        process.info["cmdline"]
        for process in psutil.process_iter(["cmdline"])
        if any(marker in part for part in process.info["cmdline"] or [])
    ]
    assert leftovers == []
