"""The representative run and medians, checked against Lighthouse's own code."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from lhfleet.aggregate import medians, representative_run
from lhfleet.models import Run, RunState
from lhfleet.runtime import find_lighthouse, find_node


def make_run(
    index: int,
    fcp: float | None,
    tti: float | None,
    state: RunState = RunState.SUCCEEDED,
    performance: float | None = 0.9,
) -> Run:
    return Run(
        id=f"job-0-{index}",
        job_id="job",
        url_index=0,
        url="http://a.test/",
        index=index,
        state=state,
        attempts=1,
        scores={"performance": performance},
        metrics={"fcp": fcp, "tti": tti, "tbt": 10.0 * index},
    )


def test_representative_of_no_valid_runs_is_none() -> None:
    runs = [make_run(0, None, 100), make_run(1, 100, None)]
    assert representative_run(runs) is None


def test_representative_skips_failed_runs() -> None:
    runs = [make_run(0, 100, 100, RunState.FAILED), make_run(1, 500, 900)]
    chosen = representative_run(runs)
    assert chosen is not None
    assert chosen.index == 1


def test_representative_of_single_valid_run() -> None:
    runs = [make_run(0, None, None), make_run(1, 700, 1500)]
    chosen = representative_run(runs)
    assert chosen is not None
    assert chosen.index == 1


def test_representative_tie_goes_to_lower_tti() -> None:
    # Medians are FCP 100 and TTI 200; both runs are at distance 100**2.
    runs = [make_run(0, 100, 300), make_run(1, 100, 100)]
    chosen = representative_run(runs)
    assert chosen is not None
    assert chosen.index == 1


def test_representative_treats_zero_as_missing() -> None:
    runs = [make_run(0, 0, 100), make_run(1, 300, 400)]
    chosen = representative_run(runs)
    assert chosen is not None
    assert chosen.index == 1


def test_medians_use_succeeded_runs_only() -> None:
    runs = [
        make_run(0, 100, 1000, performance=0.5),
        make_run(1, 300, 3000, performance=0.7),
        make_run(2, 900, 9000, RunState.FAILED, performance=0.1),
    ]
    result = medians(runs)
    assert result["fcp"] == 200
    assert result["performance"] == pytest.approx(0.6)


def _lighthouse_median_index(runs: list[Run]) -> int:
    cli = find_lighthouse()
    module = cli.parents[1] / "core" / "lib" / "median-run.js"
    lhrs = [
        {
            "index": run.index,
            "audits": {
                "first-contentful-paint": {"numericValue": run.metrics["fcp"]},
                "interactive": {"numericValue": run.metrics["tti"]},
            },
        }
        for run in runs
    ]
    script = (
        f"const m = await import({json.dumps(Path(module).as_uri())});"
        "const runs = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(String(m.computeMedianRun(runs).index));"
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


@pytest.mark.parametrize("seed", range(12))
def test_representative_matches_lighthouse(seed: int) -> None:
    generator = random.Random(seed)
    count = generator.randint(1, 9)
    runs = [
        # Coarse values make ties frequent, so the tie rule is exercised too.
        make_run(index, generator.randint(1, 6) * 100, generator.randint(1, 6) * 250)
        for index in range(count)
    ]
    chosen = representative_run(runs)
    assert chosen is not None
    assert chosen.index == _lighthouse_median_index(runs)
