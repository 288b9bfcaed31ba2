"""The results document of a job: the stable schema behind ``--format json``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import IO, Any

from lhfleet.aggregate import choose_representative, medians
from lhfleet.lhr import METRIC_AUDITS
from lhfleet.models import CATEGORIES, Job, JobSettings, Run, RunState
from lhfleet.ports import JobStore, ReportStore
from lhfleet.stats import SpreadTarget, check_spread, contended, url_statistics

SCHEMA_VERSION = 1


def results_document(
    store: JobStore, reports: ReportStore, job_id: str
) -> dict[str, Any]:
    """Return the job, and per URL its runs, representative run and medians."""
    job = store.get_job(job_id)
    return {
        "schema_version": SCHEMA_VERSION,
        "job": job_document(job),
        "urls": [
            url_document(runs, reports, job.settings)
            for runs in runs_by_url(store, job_id)
        ],
    }


@dataclass
class ResultsDigest:
    """The facts of a results document that callers need besides its text."""

    job: dict[str, Any]
    url_count: int = 0
    first_urls: list[dict[str, Any]] = field(default_factory=list)
    """The first URL entries, up to the ``keep`` the writer was given."""
    missing: list[str] = field(default_factory=list)
    """URLs without a succeeded run."""


def iter_url_documents(
    store: JobStore, reports: ReportStore, job: Job
) -> Iterator[dict[str, Any]]:
    """Yield the URL entries of a job's results, one URL's runs in memory at a time."""
    for runs in runs_by_url(store, job.id):
        yield url_document(runs, reports, job.settings)


def write_results_json(
    store: JobStore,
    reports: ReportStore,
    job_id: str,
    out: IO[str],
    keep: int = 0,
    select: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
) -> ResultsDigest:
    """Write the results document to ``out`` one URL at a time; return its digest.

    The text is the same as ``json.dumps(results_document(...), indent=2)``,
    but only one URL's entry is in memory at a time, which keeps a
    10,000-URL job's results within a few MB. ``select`` may replace or
    (returning None) leave out each entry.
    """
    job = store.get_job(job_id)
    digest = ResultsDigest(job_document(job))
    out.write('{\n  "schema_version": ' + json.dumps(SCHEMA_VERSION) + ",\n")
    out.write('  "job": ' + _indented(digest.job, 2) + ",\n")
    out.write('  "urls": [')
    written = 0
    for entry in iter_url_documents(store, reports, job):
        _take(digest, entry, keep)
        chosen = select(entry) if select is not None else entry
        if chosen is None:
            continue
        out.write(",\n    " if written else "\n    ")
        out.write(_indented(chosen, 4))
        written += 1
    out.write("\n  ]\n}\n" if written else "]\n}\n")
    return digest


def digest_results(
    store: JobStore, reports: ReportStore, job_id: str, keep: int = 0
) -> tuple[ResultsDigest, Iterator[dict[str, Any]]]:
    """Return the job's digest and its URL entries, filling the digest as they go.

    The digest's counts are complete once the iterator is exhausted.
    """
    job = store.get_job(job_id)
    digest = ResultsDigest(job_document(job))

    def entries() -> Iterator[dict[str, Any]]:
        for entry in iter_url_documents(store, reports, job):
            _take(digest, entry, keep)
            yield entry

    return digest, entries()


def _take(digest: ResultsDigest, entry: dict[str, Any], keep: int) -> None:
    digest.url_count += 1
    if len(digest.first_urls) < keep:
        digest.first_urls.append(entry)
    if entry["valid_runs"] == 0:
        digest.missing.append(entry["url"])


def _indented(value: Any, depth: int) -> str:
    """Return ``value`` as indented JSON nested ``depth`` spaces deep."""
    return json.dumps(value, indent=2).replace("\n", "\n" + " " * depth)


def runs_by_url(store: JobStore, job_id: str) -> Iterator[list[Run]]:
    """Yield each URL's runs, one URL at a time, in the order the job lists them."""
    for _, group in groupby(store.iter_runs(job_id), key=lambda run: run.url_index):
        yield list(group)


def job_document(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "state": job.state.value,
        "created_at": _iso(job.created_at),
        "finished_at": _iso(job.finished_at),
        "settings": job.settings.to_dict(),
        "counts": {
            "total": job.total,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "pending": job.pending,
        },
    }


def url_document(
    runs: list[Run], reports: ReportStore, settings: JobSettings | None = None
) -> dict[str, Any]:
    settings = settings or JobSettings()
    representative = choose_representative(runs, settings.representative)
    valid = sum(run.state is RunState.SUCCEEDED for run in runs)
    spread = check_spread(runs, SpreadTarget.parse(settings.spread_target))
    flags = [
        contended(run, settings.host_benchmark_index, settings.contention_ratio)
        for run in runs
    ]
    return {
        "url": runs[0].url,
        "url_index": runs[0].url_index,
        "label": runs[0].label,
        "meta": runs[0].meta,
        "valid_runs": valid,
        "total_runs": len(runs),
        "representative_run": representative.id if representative else None,
        "median": medians(runs),
        "runs": [
            {**run_document(run, reports), "contended": flag}
            for run, flag in zip(runs, flags, strict=True)
        ],
        "representative_rule": settings.representative,
        "statistics": url_statistics(runs),
        "spread": spread.to_dict(),
        "noisy": not spread.met,
        "contended_runs": sum(flag is True for flag in flags),
        "adaptive": _adaptive(runs, settings, spread.met),
    }


def _adaptive(
    runs: list[Run], settings: JobSettings, met: bool
) -> dict[str, Any] | None:
    if settings.max_runs is None:
        return None
    return {
        "min_runs": settings.runs,
        "max_runs": settings.max_runs,
        "runs": len(runs),
        "target_met": met,
    }


def run_document(run: Run, reports: ReportStore) -> dict[str, Any]:
    return {
        "id": run.id,
        "index": run.index,
        "state": run.state.value,
        "attempts": run.attempts,
        "error_code": run.error_code,
        "error_message": run.error_message,
        "stderr_tail": run.stderr_tail,
        "warnings": run.warnings,
        "scores": run.scores,
        "metrics": run.metrics,
        "benchmark_index": run.benchmark_index,
        "conditions": run.conditions,
        "lighthouse_version": run.lighthouse_version,
        "final_url": run.final_url,
        "report_json": reports.locate(run.report_json) if run.report_json else None,
        "report_html": reports.locate(run.report_html) if run.report_html else None,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
    }


CSV_COLUMNS = [
    "job_id",
    "url",
    "run_id",
    "index",
    "state",
    "attempts",
    "error_code",
    *(f"score_{category}" for category in CATEGORIES),
    *(f"{metric}" for metric in METRIC_AUDITS),
    "benchmark_index",
    "final_url",
    "report_html",
]


def results_csv(store: JobStore, reports: ReportStore, job_id: str) -> str:
    """Return one CSV row per run."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for run in store.iter_runs(job_id):
        writer.writerow(
            [
                job_id,
                run.url,
                run.id,
                run.index,
                run.state.value,
                run.attempts,
                run.error_code or "",
                *(_cell(run.scores.get(category)) for category in CATEGORIES),
                *(_cell(run.metrics.get(metric)) for metric in METRIC_AUDITS),
                _cell(run.benchmark_index),
                run.final_url or "",
                reports.locate(run.report_html) if run.report_html else "",
            ]
        )
    return buffer.getvalue()


def urls_without_valid_run(document: dict[str, Any]) -> list[str]:
    """Return the URLs of a results document that have no succeeded run."""
    return [entry["url"] for entry in document["urls"] if entry["valid_runs"] == 0]


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
