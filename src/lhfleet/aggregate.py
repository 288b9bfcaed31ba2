"""Per-URL aggregation: the representative run and per-metric medians."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from lhfleet.models import Run, RunState


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
