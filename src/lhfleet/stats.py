"""Statistics of a URL's runs: spread of every score and metric, and trust checks.

A run's values are read by key: a category id (``performance``, ...) for its
score from 0 to 1, a metric key (``fcp``, ``lcp``, ``tbt``, ``cls``, ``si``,
``tti``) for its numeric value, or ``benchmark_index``. Only succeeded runs
count; a run without a value for a key is left out of that key's sample.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from lhfleet.errors import InvalidSettingError
from lhfleet.lhr import METRIC_AUDITS
from lhfleet.models import CATEGORIES, EXTRA_CATEGORIES, JobSettings, Run, RunState

SCORE_KEYS = CATEGORIES + EXTRA_CATEGORIES
METRIC_KEYS = tuple(METRIC_AUDITS)
VALUE_KEYS = SCORE_KEYS + METRIC_KEYS
MEASURES = ("cv", "iqr")
DEFAULT_SPREAD_TARGET = "performance:cv=0.05"
MIN_RUNS_TO_JUDGE = 2
_TARGET = re.compile(r"^\s*([a-z-]+)\s*:\s*([a-z]+)\s*(?:=|<=)\s*([0-9.eE+-]+)\s*$")


def value_of(run: Run, key: str) -> float | None:
    """Return a run's score, metric or benchmark index under ``key``, if finite."""
    if key == "benchmark_index":
        value = run.benchmark_index
    elif key in run.scores:
        value = run.scores[key]
    else:
        value = run.metrics.get(key)
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def higher_is_better(key: str) -> bool:
    """Scores and the benchmark index improve upward; timings and CLS downward."""
    return key not in METRIC_KEYS


def succeeded(runs: Iterable[Run]) -> list[Run]:
    return [run for run in runs if run.state is RunState.SUCCEEDED]


def sample(runs: Iterable[Run], key: str) -> list[float]:
    """Return the values of ``key`` over the succeeded runs, in run order."""
    values = (value_of(run, key) for run in succeeded(runs))
    return [value for value in values if value is not None]


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Return a percentile by linear interpolation between order statistics.

    This is the common "inclusive" definition (numpy's default): the 25th
    percentile of 1, 2, 3, 4 is 1.75.
    """
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Spread:
    """The spread of one score or metric over a URL's valid runs."""

    count: int
    median: float
    p25: float
    p75: float
    min: float
    max: float
    mean: float
    stdev: float | None
    """Sample standard deviation (n - 1); None for a single value."""

    cv: float | None
    """Coefficient of variation, stdev / mean; None when it is undefined."""

    @property
    def iqr(self) -> float:
        return self.p75 - self.p25

    def measure(self, name: str) -> float | None:
        return self.cv if name == "cv" else self.iqr

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "median": self.median,
            "p25": self.p25,
            "p75": self.p75,
            "iqr": self.iqr,
            "min": self.min,
            "max": self.max,
            "mean": self.mean,
            "stdev": self.stdev,
            "cv": self.cv,
        }


def describe(values: Sequence[float]) -> Spread | None:
    """Return the spread of a sample, or None for an empty one."""
    if not values:
        return None
    ordered = sorted(values)
    mean = statistics.fmean(ordered)
    stdev = statistics.stdev(ordered) if len(ordered) > 1 else None
    return Spread(
        count=len(ordered),
        median=statistics.median(ordered),
        p25=percentile(ordered, 0.25),
        p75=percentile(ordered, 0.75),
        min=ordered[0],
        max=ordered[-1],
        mean=mean,
        stdev=stdev,
        cv=_cv(stdev, mean),
    )


def _cv(stdev: float | None, mean: float) -> float | None:
    if stdev is None:
        return None
    if mean == 0:
        # All values are zero (TBT and CLS often are): no spread at all.
        return 0.0 if stdev == 0 else None
    return stdev / abs(mean)


def url_statistics(runs: Sequence[Run]) -> dict[str, dict[str, Any]]:
    """Return the spread of every score and metric that the valid runs have."""
    keys: dict[str, None] = {}
    for run in succeeded(runs):
        keys.update(dict.fromkeys(run.scores))
        keys.update(dict.fromkeys(run.metrics))
        if run.benchmark_index is not None:
            keys["benchmark_index"] = None
    spreads = {key: describe(sample(runs, key)) for key in keys}
    return {key: spread.to_dict() for key, spread in spreads.items() if spread}


def check_key(key: str, option: str) -> str:
    """Return ``key`` if it names a score or metric; else raise naming ``option``."""
    if key not in VALUE_KEYS:
        raise InvalidSettingError(
            f"{option} names {key!r}, which is neither a category nor a metric. "
            f"Use one of {', '.join(VALUE_KEYS)}."
        )
    return key


@dataclass(frozen=True)
class SpreadTarget:
    """The maximum spread of one key that a URL's runs may show to be trusted."""

    key: str = "performance"
    measure: str = "cv"
    limit: float = 0.05

    @classmethod
    def parse(cls, text: str, option: str = "--target-spread") -> SpreadTarget:
        """Read ``KEY:MEASURE=LIMIT``: ``performance:cv=0.05``, ``lcp:iqr=250``."""
        match = _TARGET.match(text)
        if match is None:
            raise InvalidSettingError(
                f"{option} is {text!r}; write KEY:MEASURE=LIMIT, such as "
                "performance:cv=0.05 (coefficient of variation) or lcp:iqr=250 "
                "(interquartile range, in the metric's unit)."
            )
        key, measure, limit = match.groups()
        check_key(key, option)
        if measure not in MEASURES:
            raise InvalidSettingError(
                f"{option} uses the measure {measure!r}; use cv or iqr."
            )
        value = _positive_number(limit, option)
        return cls(key, measure, value)

    def __str__(self) -> str:
        return f"{self.key}:{self.measure}={self.limit:g}"


def _positive_number(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InvalidSettingError(
            f"{option} has the limit {text!r}; use a number above 0."
        )
    return value


@dataclass(frozen=True)
class SpreadCheck:
    """Whether a URL's runs are within its spread target."""

    target: SpreadTarget
    value: float | None
    valid_runs: int
    met: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": str(self.target),
            "key": self.target.key,
            "measure": self.target.measure,
            "limit": self.target.limit,
            "value": self.value,
            "valid_runs": self.valid_runs,
            "met": self.met,
            "reason": self.reason,
        }


def check_spread(runs: Sequence[Run], target: SpreadTarget) -> SpreadCheck:
    """Judge a URL's runs against a spread target."""
    values = sample(runs, target.key)
    spread = describe(values)
    if spread is None or spread.count < MIN_RUNS_TO_JUDGE:
        reason = f"{len(values)} valid value(s) of {target.key}; 2 are needed"
        return SpreadCheck(target, None, len(values), False, reason)
    value = spread.measure(target.measure)
    if value is None:
        reason = f"the {target.measure} of {target.key} is undefined (mean of 0)"
        return SpreadCheck(target, None, spread.count, False, reason)
    met = value <= target.limit
    relation = "within" if met else "over"
    reason = f"{target.measure} {value:.4g} is {relation} the limit {target.limit:g}"
    return SpreadCheck(target, value, spread.count, met, reason)


def needs_more_runs(settings: JobSettings, runs: Sequence[Run]) -> bool:
    """Decide, for an adaptive job, whether a URL whose runs all settled needs one more.

    A URL gets another run while its spread target is not met and it has
    fewer than ``max_runs`` runs. A URL without any valid run gets none:
    the page fails, and more attempts would fail the same way.
    """
    if settings.max_runs is None or not runs:
        return False
    if any(not run.state.settled for run in runs) or len(runs) >= settings.max_runs:
        return False
    if not succeeded(runs):
        return False
    target = SpreadTarget.parse(settings.spread_target)
    return not check_spread(runs, target).met


def contended(run: Run, idle: float | None, ratio: float) -> bool | None:
    """Whether a run was measured on a contended host; None when it cannot be told."""
    if idle is None or run.benchmark_index is None:
        return None
    if run.state is not RunState.SUCCEEDED:
        return None
    return run.benchmark_index < idle * ratio
