"""Extra headers reach the server under test but none of what lhfleet stores or prints.

The shared job sends ``X-Secret`` to a page that loads, a page that returns
404 and a closed port, so that succeeded and failed runs, with their stderr
tails and reports, are all checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import PageServer
from tests.e2e.conftest import SECRET, MixedJob
from tests.e2e.harness import files_containing, read_report

pytestmark = pytest.mark.lighthouse


def request_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def test_server_receives_header_for_page(
    mixed_job: MixedJob, page_server: PageServer
) -> None:
    requests = page_server.requests_to(request_path(mixed_job.good))
    assert requests != []
    assert {request.header("X-Secret") for request in requests} == {SECRET}


def test_server_receives_header_for_404(
    mixed_job: MixedJob, page_server: PageServer
) -> None:
    requests = page_server.requests_to(request_path(mixed_job.missing))
    assert requests != []
    assert {request.header("X-Secret") for request in requests} == {SECRET}


def test_results_output_omits_secret(mixed_job: MixedJob) -> None:
    assert SECRET not in mixed_job.completed.stdout


def test_progress_output_omits_secret(mixed_job: MixedJob) -> None:
    assert SECRET not in mixed_job.completed.stderr


def test_failed_runs_keep_stderr_tail(mixed_job: MixedJob) -> None:
    for url in (mixed_job.missing, mixed_job.closed):
        assert mixed_job.only_run(url)["stderr_tail"], url


def test_reports_omit_secret(mixed_job: MixedJob) -> None:
    reports = sorted(mixed_job.data.reports.rglob("*.report.*"))
    assert len(reports) == 6
    assert files_containing(mixed_job.data.reports, SECRET.encode()) == []


def test_reports_keep_header_name_redacted(mixed_job: MixedJob) -> None:
    for run in mixed_job.runs():
        result = json.loads(read_report(Path(run["report_json"])))
        headers = result["configSettings"]["extraHeaders"]
        assert headers == {"X-Secret": "[redacted]"}, run["id"]


def test_log_omits_secret(mixed_job: MixedJob) -> None:
    log = mixed_job.data.log.read_text(encoding="utf-8")
    assert log != ""
    assert SECRET not in log


def test_scratch_omits_secret(mixed_job: MixedJob) -> None:
    assert files_containing(mixed_job.data.scratch, SECRET.encode()) == []


@pytest.mark.parametrize("output_format", ["json", "csv", "table"])
def test_results_command_omits_secret(mixed_job: MixedJob, output_format: str) -> None:
    job_id = mixed_job.document["job"]["id"]
    completed = mixed_job.data.run("results", job_id, "--format", output_format)
    assert completed.returncode == 0, completed.stderr
    assert SECRET not in completed.stdout
