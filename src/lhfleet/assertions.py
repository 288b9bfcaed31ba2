"""Assertions (budgets) in Lighthouse CI's format, read as is and checked per URL.

The section is the ``ci.assert`` object of a ``lighthouserc.json``, or the
``[assert]`` table of ``lhfleet.toml``: ``preset``, ``assertions``,
``assertMatrix``, ``aggregationMethod``, ``matchingUrlPattern`` and
``includePassedAssertions``. Each assertion is a level (``off``, ``warn``,
``error``) or ``[level, options]``, where the options are ``minScore``,
``maxNumericValue``, ``maxLength`` and ``aggregationMethod``. Checking reads
each valid run's stored Lighthouse result.
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TypeGuard

from lhfleet.aggregate import choose_representative
from lhfleet.errors import ConfigError
from lhfleet.models import Run, RunState
from lhfleet.ports import JobStore, ReportStore
from lhfleet.results import runs_by_url

logger = logging.getLogger(__name__)

LEVELS = ("off", "warn", "error")
AGGREGATIONS = ("median", "optimistic", "pessimistic", "median-run")
DEFAULT_AGGREGATION = "optimistic"
CHECK_OPTIONS = ("minScore", "maxNumericValue", "maxLength")
OPTION_KEYS = (*CHECK_OPTIONS, "aggregationMethod")
PRESETS = ("lighthouse:all", "lighthouse:recommended", "lighthouse:no-pwa")
SECTION_KEYS = (
    "preset",
    "assertions",
    "assertMatrix",
    "aggregationMethod",
    "matchingUrlPattern",
    "includePassedAssertions",
    "budgetsFile",
)
MATRIX_EXCLUSIVE = ("preset", "assertions", "aggregationMethod", "budgetsFile")
DEFAULT_MIN_SCORE = 0.9
"""Lighthouse CI's minScore for an assertion that names no check."""


@dataclass(frozen=True)
class Assertion:
    """One assertion: a key such as ``categories:performance``, a level, checks."""

    key: str
    audit: str
    prop: tuple[str, ...]
    level: str
    min_score: float | None = None
    max_numeric_value: float | None = None
    max_length: float | None = None
    aggregation: str | None = None

    def checks(self) -> list[tuple[str, float]]:
        """Return (check, limit) pairs; minScore 0.9 when none is named."""
        named = [
            ("maxLength", self.max_length),
            ("maxNumericValue", self.max_numeric_value),
            ("minScore", self.min_score),
        ]
        present = [(name, limit) for name, limit in named if limit is not None]
        return present or [("minScore", DEFAULT_MIN_SCORE)]


@dataclass(frozen=True)
class AssertionSet:
    """The assertions that apply to the URLs a pattern matches (all when none)."""

    assertions: tuple[Assertion, ...] = ()
    preset: str | None = None
    pattern: re.Pattern[str] | None = None
    aggregation: str | None = None

    def matches(self, *urls: str | None) -> bool:
        if self.pattern is None:
            return True
        return any(url and self.pattern.search(url) for url in urls)


@dataclass(frozen=True)
class AssertConfig:
    """A whole assert section: one set, or an ``assertMatrix`` of them."""

    sets: tuple[AssertionSet, ...]
    include_passed: bool = False
    source: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def kebab(key: str) -> str:
    """Spell a key as Lighthouse CI does: ``firstContentfulPaint`` is kebab-case."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", key).lower()


def parse_assert_config(data: Any, where: str) -> AssertConfig:
    """Read an assert section; raise ConfigError naming the first bad key."""
    section = _table(data, where, "the assert section")
    _known(section, SECTION_KEYS, where, "the assert section")
    if "budgetsFile" in section:
        raise ConfigError(
            f"{where}: budgetsFile is not supported; Lighthouse 12 removed "
            "budgets. Write resource-summary assertions instead, such as "
            '"resource-summary:script:size": ["error", {"maxNumericValue": 300000}].'
        )
    include = section.get("includePassedAssertions", False)
    if not isinstance(include, bool):
        raise ConfigError(f"{where}: includePassedAssertions must be true or false.")
    if "assertMatrix" in section:
        clash = [key for key in MATRIX_EXCLUSIVE if key in section]
        if clash:
            raise ConfigError(
                f"{where}: assertMatrix cannot be combined with {', '.join(clash)}; "
                "move them into the entries of assertMatrix."
            )
        sets = _matrix(section["assertMatrix"], where)
    else:
        sets = (_assertion_set(section, where, ""),)
    return AssertConfig(sets, include, where, section)


def _matrix(value: Any, where: str) -> tuple[AssertionSet, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: assertMatrix must be a non-empty list of tables.")
    sets = []
    for number, entry in enumerate(value):
        label = f"assertMatrix[{number}]"
        table = _table(entry, where, label)
        _known(table, SECTION_KEYS[:5], where, label)
        sets.append(_assertion_set(table, where, f"{label}."))
    return tuple(sets)


def _assertion_set(table: dict[str, Any], where: str, prefix: str) -> AssertionSet:
    preset = table.get("preset")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(
            f"{where}: {prefix}preset is {preset!r}; use one of {', '.join(PRESETS)}."
        )
    aggregation = _aggregation(table.get("aggregationMethod"), where, prefix)
    assertions = _table(table.get("assertions", {}), where, f"{prefix}assertions")
    parsed = tuple(
        parse_assertion(key, value, where, f"{prefix}assertions")
        for key, value in assertions.items()
    )
    return AssertionSet(parsed, preset, _pattern(table, where, prefix), aggregation)


def _pattern(table: dict[str, Any], where: str, prefix: str) -> re.Pattern[str] | None:
    text = table.get("matchingUrlPattern")
    if text is None:
        return None
    if not isinstance(text, str):
        raise ConfigError(f"{where}: {prefix}matchingUrlPattern must be a string.")
    try:
        return re.compile(text)
    except re.error as error:
        raise ConfigError(
            f"{where}: {prefix}matchingUrlPattern {text!r} is not a valid regular "
            f"expression ({error.msg} at position {error.pos})."
        ) from error


def parse_assertion(key: str, value: Any, where: str, parent: str) -> Assertion:
    """Read one assertion entry: a level, ``[level]`` or ``[level, options]``."""
    label = f'{parent}."{key}"'
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not 1 <= len(value) <= 2:
        raise ConfigError(
            f"{where}: {label} must be a level or [level, options], such as "
            '["error", {"minScore": 0.9}].'
        )
    level = value[0]
    if level not in LEVELS:
        raise ConfigError(
            f"{where}: {label} has the level {level!r}; use off, warn or error."
        )
    options = _table(value[1] if len(value) == 2 else {}, where, label)
    _known(options, OPTION_KEYS, where, label)
    audit, prop = _split_key(key, where, label)
    return Assertion(
        key=key,
        audit=audit,
        prop=prop,
        level=level,
        min_score=_number(options, "minScore", where, label),
        max_numeric_value=_number(options, "maxNumericValue", where, label),
        max_length=_number(options, "maxLength", where, label),
        aggregation=_aggregation(options.get("aggregationMethod"), where, label + "."),
    )


def _split_key(key: str, where: str, label: str) -> tuple[str, tuple[str, ...]]:
    parts = [part for part in re.split(r"[.:]", key) if part]
    if not parts:
        raise ConfigError(f"{where}: {label} is an empty assertion key.")
    audit, prop = kebab(parts[0]), tuple(parts[1:])
    if audit == "categories" and len(prop) != 1:
        raise ConfigError(
            f"{where}: {label} must name one category, such as categories:performance."
        )
    if audit == "resource-summary" and (
        len(prop) != 2 or prop[1] not in ("size", "count")
    ):
        raise ConfigError(
            f"{where}: {label} must read resource-summary:TYPE:size or "
            "resource-summary:TYPE:count, such as resource-summary:script:size."
        )
    return audit, prop


def _number(options: dict[str, Any], name: str, where: str, label: str) -> float | None:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {label}.{name} is {value!r}; use a number.")
    return float(value)


def _aggregation(value: Any, where: str, prefix: str) -> str | None:
    if value is None or value in AGGREGATIONS:
        return None if value is None else str(value)
    raise ConfigError(
        f"{where}: {prefix}aggregationMethod is {value!r}; use one of "
        f"{', '.join(AGGREGATIONS)}."
    )


def _table(value: Any, where: str, label: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {label} must be a table (a JSON object).")
    return value


def _known(
    table: dict[str, Any], known: tuple[str, ...], where: str, label: str
) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{where}: unknown key {key!r} in {label}; the known keys are "
                f"{', '.join(known)}."
            )


# Checking ---------------------------------------------------------------

SCORED_MODES = ("binary", "numeric", "metricSavings")
ITEM_AUDITS = ("resource-summary", "user-timings")
OPERATORS = {
    "minScore": ">=",
    "maxNumericValue": "<=",
    "maxLength": "<=",
    "auditRan": "==",
}


@dataclass(frozen=True)
class RunResult:
    """What assertions read of one run's Lighthouse result, without the bulk."""

    run_id: str
    final_url: str | None
    lighthouse_version: str | None
    categories: dict[str, float | None]
    audits: dict[str, dict[str, Any]]
    refs: dict[str, tuple[str, str | None]]
    """Audit id to (category id, group) for every audit a category lists."""


def run_result(run_id: str, lhr: dict[str, Any]) -> RunResult:
    """Keep the score, mode, value and item count of each audit of a result."""
    audits = {}
    for audit_id, audit in (lhr.get("audits") or {}).items():
        details = audit.get("details") if isinstance(audit, dict) else None
        items = details.get("items") if isinstance(details, dict) else None
        audits[audit_id] = {
            "score": audit.get("score"),
            "mode": audit.get("scoreDisplayMode"),
            "numeric": audit.get("numericValue"),
            "length": len(items) if isinstance(items, list) else 0,
            "items": items if audit_id in ITEM_AUDITS else None,
        }
    categories = lhr.get("categories") or {}
    refs = {
        ref["id"]: (category_id, ref.get("group"))
        for category_id, category in categories.items()
        for ref in category.get("auditRefs") or []
    }
    return RunResult(
        run_id=run_id,
        final_url=lhr.get("finalDisplayedUrl") or lhr.get("finalUrl"),
        lighthouse_version=lhr.get("lighthouseVersion"),
        categories={key: value.get("score") for key, value in categories.items()},
        audits=audits,
        refs=refs,
    )


@dataclass(frozen=True)
class UrlResults:
    """A URL's valid runs, as assertions read them, and its representative run."""

    url: str
    runs: tuple[RunResult, ...]
    representative: RunResult | None


@dataclass(frozen=True)
class Outcome:
    """The result of one check of one assertion on one URL."""

    url: str
    key: str
    check: str
    level: str
    aggregation: str
    expected: float
    actual: float | None
    values: list[float | None]
    passed: bool
    message: str = ""

    @property
    def operator(self) -> str:
        return OPERATORS[self.check]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["assertion"] = data.pop("key")
        return {**data, "operator": self.operator}


def evaluate(config: AssertConfig, url: UrlResults) -> list[Outcome]:
    """Check every assertion that applies to a URL; passed ones included."""
    final = url.runs[0].final_url if url.runs else None
    outcomes: list[Outcome] = []
    for assertion_set in config.sets:
        if not assertion_set.matches(url.url, final):
            continue
        if not url.runs:
            outcomes.append(_no_valid_run(url.url))
            continue
        for assertion in resolve(assertion_set, url.runs):
            if assertion.level != "off":
                outcomes += check_assertion(assertion, assertion_set.aggregation, url)
    return outcomes


def resolve(
    assertion_set: AssertionSet, runs: tuple[RunResult, ...]
) -> list[Assertion]:
    """Return the preset's assertions with the set's own ones laid over them."""
    merged: dict[str, Assertion] = {}
    if assertion_set.preset:
        merged.update(preset_assertions(assertion_set.preset, runs))
    for assertion in assertion_set.assertions:
        merged[_canonical(assertion)] = assertion
    return list(merged.values())


def _canonical(assertion: Assertion) -> str:
    return ":".join((assertion.audit, *assertion.prop))


def preset_assertions(preset: str, runs: tuple[RunResult, ...]) -> dict[str, Assertion]:
    """Derive a preset from the results themselves, so it fits their Lighthouse.

    ``lighthouse:all`` asserts, at level error, every scored audit that a
    category lists (hidden ones aside); ``lighthouse:recommended`` and
    ``lighthouse:no-pwa`` do the same but only warn on performance audits,
    whose scores vary from run to run. Each uses the default minScore 0.9.
    """
    derived: dict[str, Assertion] = {}
    for run in runs:
        for audit_id, (category, group) in run.refs.items():
            info = run.audits.get(audit_id) or {}
            if group == "hidden" or info.get("mode") not in SCORED_MODES:
                continue
            lenient = preset != "lighthouse:all" and category == "performance"
            level = "warn" if lenient else "error"
            derived.setdefault(audit_id, Assertion(audit_id, audit_id, (), level))
    return derived


def check_assertion(
    assertion: Assertion, set_aggregation: str | None, url: UrlResults
) -> list[Outcome]:
    aggregation = assertion.aggregation or set_aggregation or DEFAULT_AGGREGATION
    runs = list(url.runs)
    if aggregation == "median-run":
        runs = [url.representative or url.runs[0]]
    entries = [_entry(run, assertion) for run in runs]
    present = [entry for entry in entries if entry is not None]
    if len(present) != len(entries):
        return [_not_ran(assertion, aggregation, url, entries)]
    return [
        _check(assertion, aggregation, check, limit, present, url.url)
        for check, limit in assertion.checks()
    ]


def _entry(run: RunResult, assertion: Assertion) -> dict[str, Any] | None:
    if assertion.audit == "categories":
        category = assertion.prop[0]
        if category not in run.categories:
            return None
        return {"score": run.categories[category], "mode": "numeric", "length": 0}
    audit = run.audits.get(assertion.audit)
    if audit is None or not assertion.prop:
        return audit
    if assertion.audit == "resource-summary":
        return _resource_entry(audit, assertion.prop)
    if assertion.audit == "user-timings":
        return _timing_entry(audit, assertion.prop)
    return audit


def _resource_entry(
    audit: dict[str, Any], prop: tuple[str, ...]
) -> dict[str, Any] | None:
    for item in audit.get("items") or []:
        if item.get("resourceType") == prop[0]:
            size = item.get("size", item.get("transferSize"))
            value = size if prop[1] == "size" else item.get("requestCount")
            return {**audit, "numeric": value}
    return None


def _timing_entry(
    audit: dict[str, Any], prop: tuple[str, ...]
) -> dict[str, Any] | None:
    timing_name = _slug("-".join(prop))
    for item in audit.get("items") or []:
        if _slug(str(item.get("name", ""))) == timing_name:
            duration = item.get("duration")
            value = duration if _finite(duration) else item.get("startTime")
            return {**audit, "numeric": value}
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", kebab(text)).strip("-")


def _value(check: str, entry: dict[str, Any]) -> float | None:
    if check == "maxLength":
        return float(entry.get("length") or 0)
    if check == "maxNumericValue":
        value = entry.get("numeric")
        return float(value) if _finite(value) else None
    score = entry.get("score")
    if _finite(score):
        return float(score)
    return {"notApplicable": 1.0, "informative": 0.0}.get(entry.get("mode") or "")


def _finite(value: Any) -> TypeGuard[float]:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _check(
    assertion: Assertion,
    aggregation: str,
    check: str,
    limit: float,
    entries: list[dict[str, Any]],
    url: str,
) -> Outcome:
    values = [_value(check, entry) for entry in entries]
    finite = [value for value in values if value is not None]
    outcome = Outcome(
        url,
        assertion.key,
        check,
        assertion.level,
        aggregation,
        limit,
        None,
        values,
        False,
    )
    if not finite or (aggregation == "pessimistic" and len(finite) != len(values)):
        hint = (
            "Use an aggregationMethod other than pessimistic, or fix the failing runs."
            if finite
            else f"The audit gave no value for {check}; check that {check} suits it."
        )
        return _replace(outcome, message=hint)
    actual = aggregate(finite, aggregation, check)
    passed = actual >= limit if check == "minScore" else actual <= limit
    return _replace(outcome, actual=actual, passed=passed)


def aggregate(values: list[float], method: str, check: str) -> float:
    """Combine a URL's values the way Lighthouse CI does for ``method``."""
    if method == "median":
        return float(statistics.median(values))
    if method == "median-run":
        return values[0]
    lower_is_better = check.startswith("max")
    use_min = (method == "optimistic") == lower_is_better
    return min(values) if use_min else max(values)


def _replace(outcome: Outcome, **changes: Any) -> Outcome:
    return Outcome(**{**outcome.__dict__, **changes})


def _not_ran(
    assertion: Assertion,
    aggregation: str,
    url: UrlResults,
    entries: list[dict[str, Any] | None],
) -> Outcome:
    version = url.runs[0].lighthouse_version or "this"
    return Outcome(
        url=url.url,
        key=assertion.key,
        check="auditRan",
        level=assertion.level,
        aggregation=aggregation,
        expected=1.0,
        actual=0.0,
        values=[0.0 if entry is None else 1.0 for entry in entries],
        passed=False,
        message=f"{_canonical(assertion)} is not in the results of Lighthouse "
        f"{version}: the audit, category or item does not exist there or did not "
        "run. Check the id, or turn the assertion off.",
    )


def _no_valid_run(url: str) -> Outcome:
    return Outcome(
        url=url,
        key="*",
        check="auditRan",
        level="error",
        aggregation="-",
        expected=1.0,
        actual=0.0,
        values=[],
        passed=False,
        message="The URL has no valid run, so none of its assertions can be "
        "checked; see `lhfleet results JOB --failed`.",
    )


def load_urls(
    store: JobStore, reports: ReportStore, job_id: str
) -> Iterator[UrlResults]:
    """Yield each URL of a job with its valid runs' stored results, one at a time."""
    rule = store.get_job(job_id).settings.representative
    for runs in runs_by_url(store, job_id):
        results = {run.id: _load(run, reports) for run in _valid(runs)}
        chosen = choose_representative(runs, rule)
        yield UrlResults(
            url=runs[0].url,
            runs=tuple(results.values()),
            representative=results.get(chosen.id) if chosen else None,
        )


def _valid(runs: list[Run]) -> list[Run]:
    return [run for run in runs if run.state is RunState.SUCCEEDED and run.report_json]


def _load(run: Run, reports: ReportStore) -> RunResult:
    assert run.report_json is not None
    logger.debug("run %s: reading its result for assertions", run.id)
    return run_result(run.id, json.loads(reports.read_json(run.report_json)))


def check_job(
    store: JobStore, reports: ReportStore, job_id: str, config: AssertConfig
) -> list[Outcome]:
    """Check a job's URLs against an assert section; return every outcome."""
    outcomes = [
        outcome
        for url in load_urls(store, reports, job_id)
        for outcome in evaluate(config, url)
    ]
    failed = [outcome for outcome in outcomes if not outcome.passed]
    logger.info(
        "job %s: %d assertion checks from %s, %d failed",
        job_id,
        len(outcomes),
        config.source,
        len(failed),
    )
    return outcomes


def has_errors(outcomes: list[Outcome]) -> bool:
    return any(not outcome.passed and outcome.level == "error" for outcome in outcomes)
