"""Representative-run rules on hand-made runs, and Lighthouse's own on real results."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lhfleet import service
from lhfleet.aggregate import (
    check_rule,
    choose_representative,
    representative_by,
    representative_run,
)
from lhfleet.errors import InvalidSettingError
from lhfleet.lhr import read_facts
from lhfleet.models import Run, RunState
from lhfleet.runtime import find_lighthouse, find_node
from tests.analysis.conftest import RealJobs, make_run


def lcp_runs(*values: float | None) -> list[Run]:
    return [make_run(i, metrics={"lcp": v}) for i, v in enumerate(values)]


def test_metric_rule_picks_run_nearest_median() -> None:
    chosen = representative_by(lcp_runs(1000, 3000, 1900, 5000, 2000), "lcp")
    assert chosen is not None
    assert chosen.index == 4


def test_metric_rule_tie_goes_to_lower_timing() -> None:
    # The median of 1000 and 2000 is 1500: both are 500 away.
    chosen = representative_by(lcp_runs(2000, 1000), "lcp")
    assert chosen is not None
    assert chosen.index == 1


def test_score_rule_tie_goes_to_higher_score() -> None:
    runs = [make_run(i, {"performance": v}) for i, v in enumerate([0.7, 0.9])]
    chosen = representative_by(runs, "performance")
    assert chosen is not None
    assert chosen.index == 1


def test_metric_rule_equal_values_go_to_earlier_run() -> None:
    chosen = representative_by(lcp_runs(1500, 1500, 1500), "lcp")
    assert chosen is not None
    assert chosen.index == 0


def test_metric_rule_skips_missing_and_failed() -> None:
    runs = [
        *lcp_runs(None, 1200),
        make_run(2, metrics={"lcp": 1}, state=RunState.FAILED),
    ]
    chosen = representative_by(runs, "lcp")
    assert chosen is not None
    assert chosen.index == 1


def test_metric_rule_without_values_is_none() -> None:
    assert representative_by(lcp_runs(None, None), "lcp") is None


def test_lighthouse_rule_without_fcp_is_none() -> None:
    runs = [make_run(0, metrics={"fcp": None, "tti": 900})]
    assert choose_representative(runs, "lighthouse") is None


def test_lighthouse_rule_single_valid_run() -> None:
    runs = [
        make_run(0, metrics={"fcp": None, "tti": 900}),
        make_run(1, metrics={"fcp": 500, "tti": 900}),
    ]
    chosen = choose_representative(runs, "lighthouse")
    assert chosen is not None
    assert chosen.index == 1


def test_lighthouse_rule_tie_goes_to_lower_tti() -> None:
    runs = [
        make_run(0, metrics={"fcp": 100, "tti": 300}),
        make_run(1, metrics={"fcp": 100, "tti": 100}),
    ]
    chosen = choose_representative(runs, "lighthouse")
    assert chosen is not None
    assert chosen.index == 1


def test_check_rule_rejects_unknown_key() -> None:
    with pytest.raises(InvalidSettingError, match="--representative names 'speed'"):
        check_rule("speed")


def test_check_rule_accepts_metric() -> None:
    assert check_rule("tbt") == "tbt"


def _stored_results(real_jobs: RealJobs, job_id: str) -> list[list[tuple[Run, Any]]]:
    workspace = service.Workspace.open(real_jobs.data_dir)
    urls = []
    for entry in service.results(workspace, job_id)["urls"]:
        pairs = []
        for run in workspace.store.iter_runs(job_id):
            if run.url_index == entry["url_index"] and run.report_json:
                lhr = json.loads(workspace.reports.read_json(run.report_json))
                pairs.append((run, lhr))
        urls.append(pairs)
    return urls


def _lighthouse_median_index(lhrs: list[dict[str, Any]]) -> int:
    cli = find_lighthouse()
    module = cli.parents[1] / "core" / "lib" / "median-run.js"
    script = (
        f"const m = await import({json.dumps(Path(module).as_uri())});"
        "const runs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(String(runs.indexOf(m.computeMedianRun(runs))));"
    )
    completed = subprocess.run(
        [
            str(find_node(cli)),
            "--input-type=commonjs",
            "-e",
            f"(async()=>{{{script}}})()",
        ],
        input=json.dumps(lhrs),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(completed.stdout)


@pytest.mark.lighthouse
def test_lighthouse_rule_matches_compute_median_run(real_jobs: RealJobs) -> None:
    checked = 0
    for job_id in (real_jobs.first, real_jobs.second, real_jobs.slowed):
        for pairs in _stored_results(real_jobs, job_id):
            runs = [run for run, _ in pairs]
            ours = representative_run(runs)
            theirs = _lighthouse_median_index([lhr for _, lhr in pairs])
            assert ours is not None
            assert ours.id == runs[theirs].id
            checked += 1
    assert checked == 5


@pytest.mark.lighthouse
def test_stored_facts_match_stored_report(real_jobs: RealJobs) -> None:
    (pairs, _) = _stored_results(real_jobs, real_jobs.first)
    run, lhr = pairs[0]
    assert read_facts(lhr).metrics == run.metrics
