"""Per-URL aggregation: the representative run and per-metric medians."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from lhfleet.errors import InvalidSettingError
from lhfleet.models import JobSettings, Run, RunState
from lhfleet.stats import SpreadTarget, check_key, higher_is_better, value_of

LIGHTHOUSE_RULE = "lighthouse"
"""The default representative-run rule: Lighthouse's own, on FCP and TTI."""


def median(values: Sequence[float]) -> float | None:
    """Return the median (the mean of the middle two for an even count)."""
    return statistics.median(values) if values else None


def _positive(value: float | None) -> float | None:
    # Lighthouse reads a metric as ``numericValue || NaN``, so a zero FCP or
    # TTI counts as missing in its median-run rule; this keeps the same rule.
    if value is None or not math.isfinite(value) or value == 0:
        return None
    return value


def representative_run(runs: Sequence[Run]) -> Run | None:
    """Return the run Lighthouse would call the median run, or None if none is valid.

    Lighthouse's rule: keep succeeded runs with an FCP and a TTI, take the
    medians of both, and pick the run with the smallest squared distance to
    them; a tie goes to the lower TTI, then to the earlier run.
    """
    valid = []
    for run in runs:
        fcp = _positive(run.metrics.get("fcp"))
        tti = _positive(run.metrics.get("tti"))
        if run.state is RunState.SUCCEEDED and fcp is not None and tti is not None:
            valid.append((run, fcp, tti))
    if not valid:
        return None
    median_fcp = statistics.median(fcp for _, fcp, _ in valid)
    median_tti = statistics.median(tti for _, _, tti in valid)

    def distance(item: tuple[Run, float, float]) -> tuple[float, float]:
        _, fcp, tti = item
        return ((median_fcp - fcp) ** 2 + (median_tti - tti) ** 2, tti)

    return min(valid, key=distance)[0]


def medians(runs: Sequence[Run]) -> dict[str, float | None]:
    """Return the median of each score and metric over the succeeded runs."""
    succeeded = [run for run in runs if run.state is RunState.SUCCEEDED]
    samples: dict[str, list[float]] = {}
    for run in succeeded:
        for key, value in [*run.scores.items(), *run.metrics.items()]:
            samples.setdefault(key, [])
            if value is not None:
                samples[key].append(value)
        if run.benchmark_index is not None:
            samples.setdefault("benchmark_index", []).append(run.benchmark_index)
    return {key: median(values) for key, values in samples.items()}


def representative_by(runs: Sequence[Run], key: str) -> Run | None:
    """Return the succeeded run closest to the median of ``key``, or None.

    A tie goes to the run with the better value (the higher score, the
    lower timing), then to the earlier run.
    """
    valid = [
        (run, value)
        for run in runs
        if run.state is RunState.SUCCEEDED and (value := value_of(run, key)) is not None
    ]
    if not valid:
        return None
    middle = statistics.median(value for _, value in valid)
    sign = -1.0 if higher_is_better(key) else 1.0

    def distance(item: tuple[Run, float]) -> tuple[float, float, int]:
        run, value = item
        return (abs(value - middle), sign * value, run.index)

    return min(valid, key=distance)[0]


def choose_representative(runs: Sequence[Run], rule: str) -> Run | None:
    """Return the representative run under a rule: ``lighthouse`` or a value key."""
    if rule == LIGHTHOUSE_RULE:
        return representative_run(runs)
    return representative_by(runs, rule)


def check_rule(rule: str, option: str = "--representative") -> str:
    """Return a valid representative-run rule, or raise naming ``option``."""
    return rule if rule == LIGHTHOUSE_RULE else check_key(rule, option)


def check_settings(settings: JobSettings, most_runs: int) -> None:
    """Raise InvalidSettingError for a bad rule, spread target or run range."""
    check_rule(settings.representative)
    SpreadTarget.parse(settings.spread_target)
    if settings.max_runs is not None and not (
        settings.runs <= settings.max_runs <= most_runs
    ):
        raise InvalidSettingError(
            f"--max-runs is {settings.max_runs}; with --runs auto it must be at "
            f"least --min-runs ({settings.runs}) and at most {most_runs}."
        )
    if not 0 < settings.contention_ratio <= 1:
        raise InvalidSettingError(
            f"contention_ratio is {settings.contention_ratio:g}; use a share of "
            "the idle benchmark index above 0 and at most 1, such as 0.8."
        )
