"""Comparing two jobs: per URL and metric, the change and whether it is real.

For each URL in both jobs and each score or metric, the valid runs of job A
and job B are two samples. The change is the difference of their medians
(B minus A). It is significant when the bootstrap confidence interval of
that difference leaves out zero (``scipy.stats.bootstrap``, percentile
method, each job's runs resampled separately). It is material when it is at
least a relative share of A's median and at least a per-metric floor. A
change that is both is an improvement or a regression, by the metric's
direction. Anything else is no significant change.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lhfleet.models import Run
from lhfleet.ports import JobStore
from lhfleet.results import runs_by_url
from lhfleet.stats import METRIC_KEYS, higher_is_better, sample
from lhfleet.summary import format_value

logger = logging.getLogger(__name__)

METHOD = "bootstrap percentile interval of the difference of medians"
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MIN_CHANGE = 0.05
RESAMPLES = 4999
SEED = 20240601
MIN_RUNS = 2
SCORE_FLOOR = 0.02
METRIC_FLOORS = {"fcp": 50.0, "lcp": 50.0, "si": 50.0, "tti": 50.0, "tbt": 25.0}
METRIC_FLOORS["cls"] = 0.01
"""Smallest changes worth reporting: 2 score points, 50 ms (25 ms of TBT), 0.01 CLS."""

IMPROVED = "improved"
REGRESSED = "regressed"
UNCHANGED = "no significant change"
INSUFFICIENT = "too few runs"


@dataclass(frozen=True)
class CompareOptions:
    confidence: float = DEFAULT_CONFIDENCE
    min_change: float = DEFAULT_MIN_CHANGE
    metrics: tuple[str, ...] = ()
    """Keys to compare; empty for every category of the jobs and every metric."""


@dataclass(frozen=True)
class MetricChange:
    """One score or metric of one URL, job A against job B."""

    key: str
    runs_a: int
    runs_b: int
    median_a: float | None
    median_b: float | None
    difference: float | None
    relative: float | None
    interval: tuple[float, float] | None
    threshold: float | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.key,
            "runs_a": self.runs_a,
            "runs_b": self.runs_b,
            "median_a": self.median_a,
            "median_b": self.median_b,
            "difference": self.difference,
            "relative": self.relative,
            "interval": list(self.interval) if self.interval else None,
            "threshold": self.threshold,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class UrlChange:
    url: str
    metrics: list[MetricChange]

    @property
    def verdict(self) -> str:
        verdicts = {change.verdict for change in self.metrics}
        for verdict in (REGRESSED, IMPROVED, UNCHANGED):
            if verdict in verdicts:
                return verdict
        return INSUFFICIENT


@dataclass(frozen=True)
class Comparison:
    job_a: str
    job_b: str
    options: CompareOptions
    urls: list[UrlChange] = field(default_factory=list)
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[tuple[str, MetricChange]]:
        return [
            (url.url, change)
            for url in self.urls
            for change in url.metrics
            if change.verdict == REGRESSED
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_a": self.job_a,
            "job_b": self.job_b,
            "method": METHOD,
            "confidence": self.options.confidence,
            "min_change": self.options.min_change,
            "regressions": len(self.regressions),
            "urls": [
                {
                    "url": url.url,
                    "verdict": url.verdict,
                    "metrics": [change.to_dict() for change in url.metrics],
                }
                for url in self.urls
            ],
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
        }


def floor(key: str) -> float:
    """Return the smallest change of ``key`` that is worth reporting."""
    return METRIC_FLOORS.get(key, SCORE_FLOOR)


def median_interval(
    a: Sequence[float], b: Sequence[float], confidence: float
) -> tuple[float, float]:
    """Return the bootstrap interval of median(b) - median(a)."""
    if len(set(a)) == 1 and len(set(b)) == 1:
        change = float(b[0] - a[0])
        return (change, change)

    def difference(x: Any, y: Any, axis: int) -> Any:
        return np.median(y, axis=axis) - np.median(x, axis=axis)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # scipy takes about a second to import, so only compare pays for it.
        from scipy import stats as scipy_stats  # noqa: PLC0415

        result = scipy_stats.bootstrap(
            (np.asarray(a, dtype=float), np.asarray(b, dtype=float)),
            difference,
            n_resamples=RESAMPLES,
            confidence_level=confidence,
            method="percentile",
            vectorized=True,
            rng=np.random.default_rng(SEED),
        )
    low, high = result.confidence_interval
    return (float(low), float(high))


def compare_samples(
    key: str, a: Sequence[float], b: Sequence[float], options: CompareOptions
) -> MetricChange:
    """Compare one metric's two samples and give the verdict."""
    median_a = float(np.median(a)) if a else None
    median_b = float(np.median(b)) if b else None
    if median_a is None or median_b is None or min(len(a), len(b)) < MIN_RUNS:
        difference = (
            None if median_a is None or median_b is None else median_b - median_a
        )
        return MetricChange(
            key, len(a), len(b), median_a, median_b, difference, None, None, None,
            INSUFFICIENT,
        )  # fmt: skip
    difference = median_b - median_a
    interval = median_interval(a, b, options.confidence)
    threshold = max(floor(key), options.min_change * abs(median_a))
    significant = interval[0] > 0 or interval[1] < 0
    material = abs(difference) >= threshold
    verdict = UNCHANGED
    if significant and material:
        worse = difference < 0 if higher_is_better(key) else difference > 0
        verdict = REGRESSED if worse else IMPROVED
    relative = difference / abs(median_a) if median_a else None
    return MetricChange(
        key, len(a), len(b), median_a, median_b, difference, relative, interval,
        threshold, verdict,
    )  # fmt: skip


def compare_urls(
    runs_a: Sequence[Run],
    runs_b: Sequence[Run],
    keys: Iterable[str],
    options: CompareOptions,
) -> list[MetricChange]:
    return [
        compare_samples(key, sample(runs_a, key), sample(runs_b, key), options)
        for key in keys
    ]


def _by_url(store: JobStore, job_id: str) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = {}
    for runs in runs_by_url(store, job_id):
        key = runs[0].url
        number = 1
        while key in grouped:
            number += 1
            key = f"{runs[0].url} (#{number})"
        grouped[key] = runs
    return grouped


def compare_jobs(
    store: JobStore, job_a: str, job_b: str, options: CompareOptions | None = None
) -> Comparison:
    """Compare every URL that two jobs share; list those only one of them has."""
    options = options or CompareOptions()
    first, second = store.get_job(job_a), store.get_job(job_b)
    keys = options.metrics or _default_keys(
        first.settings.categories, second.settings.categories
    )
    urls_a, urls_b = _by_url(store, job_a), _by_url(store, job_b)
    shared = [url for url in urls_a if url in urls_b]
    comparison = Comparison(
        job_a,
        job_b,
        options,
        urls=[
            UrlChange(url, compare_urls(urls_a[url], urls_b[url], keys, options))
            for url in shared
        ],
        only_in_a=[url for url in urls_a if url not in urls_b],
        only_in_b=[url for url in urls_b if url not in urls_a],
    )
    logger.info(
        "compared job %s with job %s: %d shared URLs, %d regressions",
        job_a,
        job_b,
        len(shared),
        len(comparison.regressions),
    )
    return comparison


def _default_keys(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    categories = [category for category in first if category in second]
    return (*categories, *METRIC_KEYS)


def format_change(key: str, value: float | None) -> str:
    """Show a difference in the metric's unit, with its sign."""
    if value is None:
        return "–"
    magnitude = format_value(key, abs(value))
    if magnitude.strip("0.,") == "":
        return magnitude
    sign = "+" if value > 0 else "−"
    return sign + magnitude


def comparison_markdown(comparison: Comparison) -> str:
    """Return a comparison as Markdown, for a pull request comment."""
    count = len(comparison.regressions)
    lines = [
        f"### lhfleet: job `{comparison.job_b}` against `{comparison.job_a}`",
        "",
        f"**{count} significant regression{'s' if count != 1 else ''}**, "
        f"{comparison.options.confidence:.0%} bootstrap interval of the difference "
        f"of medians; changes under {comparison.options.min_change:.0%} or the "
        "metric's floor are not counted.",
    ]
    for url in comparison.urls:
        lines += ["", f"#### {url.url}: {url.verdict}", ""]
        lines += ["| metric | A | B | change | interval | verdict |"]
        lines += ["|---|---:|---:|---:|---:|---|"]
        lines += [_markdown_row(change) for change in url.metrics]
    for label, urls in (("A", comparison.only_in_a), ("B", comparison.only_in_b)):
        if urls:
            lines += ["", f"Only in job {label}: " + ", ".join(urls)]
    return "\n".join(lines) + "\n"


def _markdown_row(change: MetricChange) -> str:
    key = change.key
    interval = "–"
    if change.interval:
        low, high = change.interval
        interval = f"{format_change(key, low)} to {format_change(key, high)}"
    verdict = f"**{change.verdict}**" if change.verdict == REGRESSED else change.verdict
    return (
        f"| {key} | {format_value(key, change.median_a)} | "
        f"{format_value(key, change.median_b)} | "
        f"{format_change(key, change.difference)} | {interval} | {verdict} |"
    )
