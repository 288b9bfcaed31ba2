"""Statistics of a URL's runs: spread, spread targets, adaptive runs, contention."""

from __future__ import annotations

import pytest

from lhfleet.errors import InvalidSettingError
from lhfleet.models import JobSettings, RunState
from lhfleet.stats import (
    SpreadTarget,
    check_spread,
    contended,
    describe,
    needs_more_runs,
    percentile,
    sample,
    url_statistics,
)
from tests.analysis.conftest import make_run


def perf_runs(*scores: float | None, failed: int = 0) -> list:  # type: ignore[type-arg]
    runs = [make_run(i, {"performance": s}) for i, s in enumerate(scores)]
    runs += [
        make_run(len(runs) + i, {"performance": 0.1}, state=RunState.FAILED)
        for i in range(failed)
    ]
    return runs


def test_percentile_interpolates() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.25) == 1.75


def test_percentile_of_one_value() -> None:
    assert percentile([5.0], 0.75) == 5.0


def test_describe_empty_is_none() -> None:
    assert describe([]) is None


def test_describe_single_value_has_no_stdev() -> None:
    spread = describe([0.8])
    assert spread is not None
    assert spread.stdev is None
    assert spread.cv is None


def test_describe_figures() -> None:
    spread = describe([4.0, 1.0, 3.0, 2.0])
    assert spread is not None
    assert (spread.median, spread.p25, spread.p75) == (2.5, 1.75, 3.25)
    assert (spread.min, spread.max, spread.iqr) == (1.0, 4.0, 1.5)
    assert spread.cv == pytest.approx(1.2909944 / 2.5)


def test_cv_of_all_zero_is_zero() -> None:
    spread = describe([0.0, 0.0, 0.0])
    assert spread is not None
    assert spread.cv == 0.0


def test_sample_skips_failed_and_missing() -> None:
    runs = perf_runs(0.9, None, 0.7, failed=1)
    assert sample(runs, "performance") == [0.9, 0.7]


def test_url_statistics_keys() -> None:
    runs = [
        make_run(0, {"performance": 0.9}, {"lcp": 1000.0, "fcp": None}, benchmark=1500),
        make_run(1, {"performance": 0.8}, {"lcp": 1200.0, "fcp": None}, benchmark=1400),
    ]
    statistics = url_statistics(runs)
    assert set(statistics) == {"performance", "lcp", "benchmark_index"}
    assert statistics["lcp"]["median"] == 1100.0


def test_url_statistics_valid_count() -> None:
    statistics = url_statistics(perf_runs(0.9, 0.8, failed=2))
    assert statistics["performance"]["count"] == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("performance:cv=0.05", SpreadTarget("performance", "cv", 0.05)),
        ("lcp:iqr<=250", SpreadTarget("lcp", "iqr", 250.0)),
        (" tbt : cv = 0.2 ", SpreadTarget("tbt", "cv", 0.2)),
    ],
    ids=["cv", "iqr-le", "spaces"],
)
def test_spread_target_parse(text: str, expected: SpreadTarget) -> None:
    assert SpreadTarget.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("performance", "KEY:MEASURE=LIMIT"),
        ("speed:cv=0.1", "'speed'"),
        ("lcp:mad=3", "'mad'"),
        ("lcp:cv=0", "above 0"),
    ],
    ids=["shape", "key", "measure", "limit"],
)
def test_spread_target_parse_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidSettingError, match=message):
        SpreadTarget.parse(text)


def test_check_spread_met() -> None:
    check = check_spread(perf_runs(0.90, 0.91, 0.92), SpreadTarget())
    assert check.met
    assert check.value == pytest.approx(0.01 / 0.91)


def test_check_spread_over_limit() -> None:
    check = check_spread(perf_runs(0.5, 0.9, 0.7), SpreadTarget())
    assert not check.met
    assert "over the limit" in check.reason


def test_check_spread_needs_two_values() -> None:
    check = check_spread(perf_runs(0.9, failed=2), SpreadTarget())
    assert not check.met
    assert check.value is None


def test_check_spread_iqr() -> None:
    runs = [make_run(i, metrics={"lcp": v}) for i, v in enumerate([1000, 1100, 1200])]
    check = check_spread(runs, SpreadTarget("lcp", "iqr", 150))
    assert check.value == 100
    assert check.met


ADAPTIVE = JobSettings(runs=3, max_runs=5)


def test_adaptive_adds_run_when_noisy() -> None:
    assert needs_more_runs(ADAPTIVE, perf_runs(0.5, 0.9, 0.7))


def test_adaptive_stops_when_settled() -> None:
    assert not needs_more_runs(ADAPTIVE, perf_runs(0.90, 0.91, 0.92))


def test_adaptive_stops_at_max_runs() -> None:
    assert not needs_more_runs(ADAPTIVE, perf_runs(0.5, 0.9, 0.7, 0.2, 0.95))


def test_adaptive_waits_for_pending_runs() -> None:
    runs = [*perf_runs(0.5, 0.9), make_run(2, state=RunState.QUEUED)]
    assert not needs_more_runs(ADAPTIVE, runs)


def test_adaptive_gives_up_without_valid_run() -> None:
    assert not needs_more_runs(ADAPTIVE, perf_runs(failed=3))


def test_adaptive_adds_run_for_single_valid_run() -> None:
    assert needs_more_runs(ADAPTIVE, perf_runs(0.9, failed=2))


def test_fixed_job_never_adds_runs() -> None:
    assert not needs_more_runs(JobSettings(runs=3), perf_runs(0.1, 0.9, 0.5))


def test_contended_below_ratio() -> None:
    assert contended(make_run(0, benchmark=700), 1000, 0.8) is True


def test_not_contended_at_ratio() -> None:
    assert contended(make_run(0, benchmark=800), 1000, 0.8) is False


def test_contended_unknown_without_calibration() -> None:
    assert contended(make_run(0, benchmark=700), None, 0.8) is None


def test_contended_unknown_for_failed_run() -> None:
    run = make_run(0, benchmark=700, state=RunState.FAILED)
    assert contended(run, 1000, 0.8) is None
