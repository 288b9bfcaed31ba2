"""The results document written one URL at a time, against the one built whole."""

from __future__ import annotations

import io
import json
from pathlib import Path

from lhfleet.hooks import MAX_PAYLOAD_URLS, digest_payload, hook_payload
from lhfleet.lhr import ReportFacts
from lhfleet.models import JobSecrets, JobSettings
from lhfleet.ports import Failure
from lhfleet.reports.local import LocalReportStore
from lhfleet.results import digest_results, results_document, write_results_json
from lhfleet.store.sql import SqlJobStore


def _job(store: SqlJobStore, urls: int, failing: set[int]) -> str:
    """Store a job of ``urls`` URLs, two runs each; URLs in ``failing`` fail."""
    job = store.create_job(
        JobSettings(runs=2, categories=("performance",)),
        JobSecrets(),
        [f"http://site.test/{number}" for number in range(urls)],
    )
    for url_index in range(urls):
        for index in range(2):
            run_id = f"{job.id}-{url_index}-{index}"
            assert store.claim(run_id, "w", 60, now=1) is not None
            if url_index in failing:
                failure = Failure(code="NO_FCP", message="no paint")
                store.record_failure(run_id, "w", failure, now=2)
                continue
            facts = ReportFacts(
                None, None, {"performance": 0.9}, {"lcp": 1000.0 + index}
            )
            facts.conditions["concurrency"] = 2
            store.record_success(run_id, "w", facts, "r.json", "r.html", now=2)
    return job.id


def test_streamed_text_equals_whole_document(
    sql_store: SqlJobStore, tmp_path: Path
) -> None:
    reports = LocalReportStore(tmp_path)
    job_id = _job(sql_store, 5, failing={3})
    out = io.StringIO()
    digest = write_results_json(sql_store, reports, job_id, out, keep=2)
    whole = results_document(sql_store, reports, job_id)
    assert out.getvalue() == json.dumps(whole, indent=2) + "\n"
    assert digest.url_count == 5
    assert digest.missing == ["http://site.test/3"]
    assert [entry["url"] for entry in digest.first_urls] == [
        "http://site.test/0",
        "http://site.test/1",
    ]


def test_selected_entries_leave_valid_json(
    sql_store: SqlJobStore, tmp_path: Path
) -> None:
    reports = LocalReportStore(tmp_path)
    job_id = _job(sql_store, 4, failing={0, 2})
    out = io.StringIO()

    def failed_only(entry: dict[str, object]) -> dict[str, object] | None:
        return entry if entry["valid_runs"] == 0 else None

    digest = write_results_json(sql_store, reports, job_id, out, select=failed_only)
    document = json.loads(out.getvalue())
    assert [entry["url"] for entry in document["urls"]] == [
        "http://site.test/0",
        "http://site.test/2",
    ]
    assert digest.url_count == 4
    none = io.StringIO()
    write_results_json(sql_store, reports, job_id, none, select=lambda _: None)
    assert json.loads(none.getvalue())["urls"] == []


def test_digest_gives_the_same_hook_payload(
    sql_store: SqlJobStore, tmp_path: Path
) -> None:
    reports = LocalReportStore(tmp_path)
    job_id = _job(sql_store, 3, failing={1})
    digest, entries = digest_results(sql_store, reports, job_id, MAX_PAYLOAD_URLS)
    assert len(list(entries)) == 3
    whole = results_document(sql_store, reports, job_id)
    location = "/data/reports/results.json"
    assert digest_payload(digest, location) == hook_payload(whole, location)


def test_runs_keep_their_conditions(sql_store: SqlJobStore, tmp_path: Path) -> None:
    reports = LocalReportStore(tmp_path)
    job_id = _job(sql_store, 1, failing=set())
    document = results_document(sql_store, reports, job_id)
    run = document["urls"][0]["runs"][0]
    assert run["conditions"] == {"concurrency": 2}
