"""Assertions in Lighthouse CI's format: parsing, levels, aggregation, presets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lhfleet.assertions import (
    AssertConfig,
    RunResult,
    UrlResults,
    aggregate,
    evaluate,
    has_errors,
    kebab,
    parse_assert_config,
    run_result,
)
from lhfleet.cli.analyze import outcome_line
from lhfleet.errors import ConfigError
from tests.analysis.conftest import RealJobs, lhfleet


def lhr(
    performance: float | None,
    lcp: float | None,
    final_url: str = "http://a.test/",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Return a small Lighthouse result with the fields assertions read."""
    audits: dict[str, Any] = {
        "largest-contentful-paint": {
            "score": 0.8, "scoreDisplayMode": "numeric", "numericValue": lcp,
        },
        "document-title": {"score": 1, "scoreDisplayMode": "binary"},
        "image-alt": {"score": None, "scoreDisplayMode": "notApplicable"},
        "diagnostics": {"score": None, "scoreDisplayMode": "informative"},
        "render-blocking-insight": {
            "score": 0, "scoreDisplayMode": "metricSavings",
            "details": {"items": [{"url": "a.css"}, {"url": "b.js"}]},
        },
        "resource-summary": {
            "score": None, "scoreDisplayMode": "informative",
            "details": {"items": [
                {"resourceType": "script", "requestCount": 4, "transferSize": 90000},
                {"resourceType": "total", "requestCount": 9, "transferSize": 120000},
            ]},
        },
        "user-timings": {
            "score": None, "scoreDisplayMode": "informative",
            "details": {"items": [
                {"name": "app:ready", "startTime": 10, "duration": 320},
            ]},
        },
    }  # fmt: skip
    audits.update(extra or {})
    return {
        "lighthouseVersion": "13.5.0",
        "finalDisplayedUrl": final_url,
        "audits": audits,
        "categories": {
            "performance": {
                "score": performance,
                "auditRefs": [
                    {"id": "largest-contentful-paint", "group": "metrics"},
                    {"id": "render-blocking-insight", "group": "insights"},
                    {"id": "diagnostics", "group": "hidden"},
                ],
            },
            "seo": {
                "score": 1.0,
                "auditRefs": [{"id": "document-title"}, {"id": "image-alt"}],
            },
        },
    }


def url_results(*results: dict[str, Any], representative: int = 0) -> UrlResults:
    runs = tuple(run_result(f"job-0-{i}", item) for i, item in enumerate(results))
    return UrlResults("http://a.test/", runs, runs[representative])


THREE = url_results(lhr(0.95, 1000), lhr(0.80, 3000), lhr(0.88, 2000), representative=2)


def config(assertions: dict[str, Any], **section: Any) -> AssertConfig:
    return parse_assert_config({"assertions": assertions, **section}, "test")


def outcome_of(
    assertions: dict[str, Any], results: UrlResults = THREE, **section: Any
) -> Any:
    (outcome,) = evaluate(config(assertions, **section), results)
    return outcome


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("median", 0.88),
        ("optimistic", 0.95),
        ("pessimistic", 0.80),
        ("median-run", 0.88),
    ],
)
def test_score_aggregation(method: str, expected: float) -> None:
    outcome = outcome_of(
        {
            "categories:performance": [
                "error",
                {"minScore": 0.9, "aggregationMethod": method},
            ]
        }
    )
    assert outcome.actual == expected


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("median", 2000),
        ("optimistic", 1000),
        ("pessimistic", 3000),
        ("median-run", 2000),
    ],
)
def test_numeric_aggregation(method: str, expected: float) -> None:
    options = {"maxNumericValue": 2500, "aggregationMethod": method}
    outcome = outcome_of({"largest-contentful-paint": ["warn", options]})
    assert outcome.actual == expected


def test_default_aggregation_is_optimistic() -> None:
    outcome = outcome_of({"categories:performance": ["error", {"minScore": 0.9}]})
    assert outcome.aggregation == "optimistic"
    assert outcome.passed


def test_section_aggregation_applies() -> None:
    outcome = outcome_of(
        {"categories:performance": ["error", {"minScore": 0.9}]},
        aggregationMethod="pessimistic",
    )
    assert not outcome.passed


def test_median_run_uses_representative() -> None:
    results = url_results(lhr(0.95, 1000), lhr(0.80, 3000), representative=1)
    options = {"minScore": 0.9, "aggregationMethod": "median-run"}
    outcome = outcome_of({"categories:performance": ["error", options]}, results)
    assert outcome.values == [0.80]


def test_error_level_failure_is_an_error() -> None:
    outcome = outcome_of({"categories:performance": ["error", {"minScore": 0.99}]})
    assert has_errors([outcome])


def test_warn_level_failure_is_not_an_error() -> None:
    outcome = outcome_of({"categories:performance": ["warn", {"minScore": 0.99}]})
    assert not outcome.passed
    assert not has_errors([outcome])


def test_off_level_is_skipped() -> None:
    assert evaluate(config({"categories:performance": "off"}), THREE) == []


def test_level_alone_means_min_score_point_nine() -> None:
    outcome = outcome_of({"largest-contentful-paint": "error"})
    assert (outcome.check, outcome.expected, outcome.actual) == ("minScore", 0.9, 0.8)


def test_max_length_counts_items() -> None:
    outcome = outcome_of({"render-blocking-insight": ["error", {"maxLength": 1}]})
    assert (outcome.actual, outcome.passed) == (2, False)


def test_not_applicable_passes_min_score() -> None:
    assert outcome_of({"image-alt": "error"}).passed


def test_informative_fails_min_score() -> None:
    assert outcome_of({"diagnostics": "error"}).actual == 0


def test_missing_audit_did_not_run() -> None:
    outcome = outcome_of({"uses-http2": "error"})
    assert outcome.check == "auditRan"
    assert "not in the results of Lighthouse 13.5.0" in outcome.message


def test_pessimistic_fails_when_a_run_has_no_value() -> None:
    results = url_results(lhr(0.95, 1000), lhr(None, None))
    options = {"minScore": 0.5, "aggregationMethod": "pessimistic"}
    outcome = outcome_of({"categories:performance": ["error", options]}, results)
    assert outcome.actual is None
    assert "pessimistic" in outcome.message


def test_optimistic_ignores_a_run_without_value() -> None:
    results = url_results(lhr(0.95, 1000), lhr(None, None))
    outcome = outcome_of(
        {"categories:performance": ["error", {"minScore": 0.9}]}, results
    )
    assert outcome.passed


def test_resource_summary_size() -> None:
    options = {"maxNumericValue": 50000}
    outcome = outcome_of({"resource-summary:script:size": ["error", options]})
    assert (outcome.actual, outcome.passed) == (90000, False)


def test_resource_summary_count() -> None:
    outcome = outcome_of(
        {"resource-summary:total:count": ["error", {"maxNumericValue": 10}]}
    )
    assert (outcome.actual, outcome.passed) == (9, True)


def test_user_timing_duration() -> None:
    outcome = outcome_of({"user-timings:app-ready": ["warn", {"maxNumericValue": 300}]})
    assert outcome.actual == 320


def test_camel_case_key_is_kebab_cased() -> None:
    outcome = outcome_of(
        {"largestContentfulPaint": ["warn", {"maxNumericValue": 5000}]}
    )
    assert outcome.passed


def test_kebab() -> None:
    assert kebab("firstContentfulPaint") == "first-contentful-paint"


def test_recommended_preset_levels() -> None:
    outcomes = evaluate(config({}, preset="lighthouse:recommended"), THREE)
    levels = {outcome.key: outcome.level for outcome in outcomes}
    assert levels == {
        "largest-contentful-paint": "warn",
        "render-blocking-insight": "warn",
        "document-title": "error",
    }


def test_all_preset_is_error_everywhere() -> None:
    outcomes = evaluate(config({}, preset="lighthouse:all"), THREE)
    assert {outcome.level for outcome in outcomes} == {"error"}


def test_assertion_overrides_preset() -> None:
    assertions = {"render-blocking-insight": "off"}
    outcomes = evaluate(config(assertions, preset="lighthouse:no-pwa"), THREE)
    assert "render-blocking-insight" not in {outcome.key for outcome in outcomes}


def test_matrix_applies_by_pattern() -> None:
    section = {
        "assertMatrix": [
            {
                "matchingUrlPattern": "b\\.test",
                "assertions": {"document-title": "error"},
            },
            {"matchingUrlPattern": "a\\.test", "assertions": {"image-alt": "error"}},
        ]
    }
    outcomes = evaluate(parse_assert_config(section, "test"), THREE)
    assert [outcome.key for outcome in outcomes] == ["image-alt"]


def test_pattern_matches_final_url() -> None:
    results = url_results(lhr(0.9, 1000, final_url="https://final.test/"))
    section = {"matchingUrlPattern": "final", "assertions": {"image-alt": "error"}}
    assert len(evaluate(parse_assert_config(section, "test"), results)) == 1


def test_url_without_valid_run_fails() -> None:
    (outcome,) = evaluate(
        config({"image-alt": "error"}), UrlResults("http://a/", (), None)
    )
    assert outcome.level == "error"
    assert "no valid run" in outcome.message


def test_aggregate_median_of_even_count() -> None:
    assert aggregate([1.0, 2.0, 3.0, 4.0], "median", "minScore") == 2.5


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"assertions": {"x": ["fatal"]}}, "'fatal'"),
        ({"assertions": {"x": ["error", {"minScor": 1}]}},
         "unknown key 'minScor' in assertions.\"x\""),
        ({"assertions": {"x": ["error", {"minScore": "high"}]}},
         'assertions."x".minScore'),
        ({"assertions": {"x": ["error", {"aggregationMethod": "mean"}]}}, "'mean'"),
        ({"preset": "lighthouse:fast"}, "'lighthouse:fast'"),
        ({"assertion": {}}, "unknown key 'assertion'"),
        ({"budgetsFile": "b.json"}, "budgetsFile is not supported"),
        ({"assertMatrix": [], "preset": "lighthouse:all"}, "cannot be combined"),
        ({"assertMatrix": [{"assertions": {}, "bad": 1}]}, "assertMatrix\\[0\\]"),
        ({"matchingUrlPattern": "("}, "not a valid regular expression"),
        ({"assertions": {"categories": "error"}}, "one category"),
        ({"assertions": {"resource-summary:script:weight": "error"}}, "TYPE:size"),
        ([], "must be a table"),
    ],
    ids=[
        "level", "option", "number", "aggregation", "preset", "section-key", "budgets",
        "matrix-clash", "matrix-key", "pattern", "category", "resource", "not-table",
    ],
)  # fmt: skip
def test_malformed_section_names_key(section: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_assert_config(section, "lighthouserc.json")


def test_run_result_keeps_item_count_only() -> None:
    result = run_result("r", lhr(0.9, 1000))
    assert result.audits["render-blocking-insight"]["items"] is None
    assert result.audits["render-blocking-insight"]["length"] == 2


def test_outcome_line_names_url_value_limit() -> None:
    outcome = outcome_of({"categories:performance": ["error", {"minScore": 0.99}]})
    assert outcome_line(outcome) == (
        "error http://a.test/  categories:performance minScore: found 0.95, "
        "limit >= 0.99 (optimistic of 3 runs)"
    )


def test_run_result_refs() -> None:
    result: RunResult = run_result("r", lhr(0.9, 1000))
    assert result.refs["diagnostics"] == ("performance", "hidden")


@pytest.mark.lighthouse
def test_run_assert_fails_on_slowed_page(real_jobs: RealJobs) -> None:
    completed = real_jobs.slowed_run
    assert completed.returncode == 1
    assert "error http://127.0.0.1:" in completed.stderr
    assert "categories:performance minScore: found" in completed.stderr
    assert "limit >= 0.9 (optimistic of 3 runs)" in completed.stderr
    assert "error-level assertions failed" in completed.stderr


@pytest.mark.lighthouse
def test_assert_passes_with_lighthouserc_as_is(real_jobs: RealJobs) -> None:
    completed = lhfleet(
        "assert", real_jobs.first, "--json", "--data-dir", str(real_jobs.data_dir),
        cwd=real_jobs.work,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr
    document = json.loads(completed.stdout)
    assert document["source"].endswith("lighthouserc.json ci.assert")
    assert {o["assertion"] for o in document["outcomes"]} == {
        "categories:performance",
        "total-blocking-time",
    }


@pytest.mark.lighthouse
def test_assert_prints_value_and_limit(real_jobs: RealJobs, tmp_path: Path) -> None:
    rc = tmp_path / ".lighthouserc.json"
    rc.write_text(
        json.dumps({"ci": {"assert": {"assertions": {
            "largest-contentful-paint": ["error", {"maxNumericValue": 1}],
        }}}}),
        encoding="utf-8",
    )  # fmt: skip
    completed = lhfleet(
        "assert", real_jobs.first, "--config", str(rc),
        "--data-dir", str(real_jobs.data_dir),
    )  # fmt: skip
    assert completed.returncode == 1
    assert "/static.html  largest-contentful-paint maxNumericValue" in completed.stdout
    assert "limit <= 1 (optimistic of 3 runs)" in completed.stdout
