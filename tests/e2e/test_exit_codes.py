"""Exit statuses of ``lhfleet``: 1 when a URL has no valid run, 2 for usage errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import PageServer
from tests.e2e.conftest import MixedJob
from tests.e2e.harness import DataDir, flat

UNKNOWN_JOB = "20000101-000000-abcdef"


@pytest.mark.lighthouse
def test_url_without_valid_run_exits_one(mixed_job: MixedJob) -> None:
    assert mixed_job.completed.returncode == 1, mixed_job.completed.stderr


@pytest.mark.lighthouse
def test_exit_one_names_failed_urls(mixed_job: MixedJob) -> None:
    assert "2 URLs have no valid run" in flat(mixed_job.completed.stderr)


@pytest.mark.lighthouse
def test_exit_one_still_prints_results(mixed_job: MixedJob) -> None:
    document = mixed_job.document
    assert document["job"]["counts"]["succeeded"] == 1
    assert document["job"]["counts"]["failed"] == 2
    assert document["job"]["state"] == "completed"


@pytest.mark.lighthouse
def test_page_that_loads_succeeds(mixed_job: MixedJob) -> None:
    assert mixed_job.only_run(mixed_job.good)["state"] == "succeeded"


@pytest.mark.lighthouse
def test_document_404_fails_with_status(mixed_job: MixedJob) -> None:
    run = mixed_job.only_run(mixed_job.missing)
    assert run["state"] == "failed"
    assert run["error_code"] == "ERRORED_DOCUMENT_REQUEST"
    assert "404" in run["error_message"]


@pytest.mark.lighthouse
def test_document_404_not_retried(mixed_job: MixedJob) -> None:
    assert mixed_job.only_run(mixed_job.missing)["attempts"] == 1


@pytest.mark.lighthouse
def test_closed_port_fails(mixed_job: MixedJob) -> None:
    run = mixed_job.only_run(mixed_job.closed)
    assert run["state"] == "failed"
    assert run["error_code"] in {"CHROME_INTERSTITIAL_ERROR", "FAILED_DOCUMENT_REQUEST"}


@pytest.mark.lighthouse
def test_closed_port_not_retried(mixed_job: MixedJob) -> None:
    assert mixed_job.only_run(mixed_job.closed)["attempts"] == 1


@pytest.mark.lighthouse
def test_failed_runs_keep_reports(mixed_job: MixedJob) -> None:
    for url in (mixed_job.missing, mixed_job.closed):
        run = mixed_job.only_run(url)
        assert Path(run["report_json"]).is_file(), url
        assert Path(run["report_html"]).is_file(), url


RUN_USAGE_ERRORS = {
    "runs zero": ["--runs", "0"],
    "runs not a number": ["--runs", "two"],
    "concurrency zero": ["--concurrency", "0"],
    "headers not json": ["--extra-headers", "{nope"],
}


@pytest.mark.parametrize(
    "options", RUN_USAGE_ERRORS.values(), ids=RUN_USAGE_ERRORS.keys()
)
def test_bad_run_option_exits_two(
    options: list[str], page_server: PageServer, tmp_path: Path
) -> None:
    data = DataDir(tmp_path / "data")
    completed = data.run("run", page_server.url("/"), *options)
    assert completed.returncode == 2, completed.stderr
    assert options[0] in flat(completed.stderr)
    assert data.stored_job_ids() == []


BAD_URLS = {
    "ftp scheme": ("ftp://x", "unsupported scheme ftp:"),
    "no scheme": ("example.com", "has no scheme"),
}


@pytest.mark.parametrize(("url", "message"), BAD_URLS.values(), ids=BAD_URLS.keys())
def test_bad_url_exits_two(url: str, message: str, tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    completed = data.run("run", url, "--runs", "1")
    assert completed.returncode == 2, completed.stderr
    assert message in flat(completed.stderr)
    assert "nothing was queued" in flat(completed.stderr)
    assert data.stored_job_ids() == []


def test_bad_url_among_good_queues_nothing(
    page_server: PageServer, tmp_path: Path
) -> None:
    data = DataDir(tmp_path / "data")
    good = page_server.url("/?case=next-to-bad-url")
    completed = data.run("run", good, "ftp://x", "--runs", "1")
    assert completed.returncode == 2, completed.stderr
    assert data.jobs() == []
    assert page_server.requests_to("/?case=next-to-bad-url") == []


def test_no_url_exits_two(tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    completed = data.run("run", "--runs", "1")
    assert completed.returncode == 2, completed.stderr
    assert data.stored_job_ids() == []


@pytest.mark.parametrize(
    "command",
    [
        ["status", UNKNOWN_JOB, "--json"],
        ["resume", UNKNOWN_JOB],
    ],
    ids=["status", "resume"],
)
def test_unknown_job_exits_two(command: list[str], tmp_path: Path) -> None:
    data = DataDir(tmp_path / "data")
    completed = data.run(*command)
    assert completed.returncode == 2, completed.stderr
    assert f"No job '{UNKNOWN_JOB}'" in flat(completed.stderr)
    assert completed.stdout == ""
