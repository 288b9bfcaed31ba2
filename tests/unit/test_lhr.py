"""Reading facts from a Lighthouse result, and redacting its secrets."""

from __future__ import annotations

from typing import Any

from lhfleet.lhr import REDACTED, read_facts, redact


def make_lhr(**overrides: Any) -> dict[str, Any]:
    lhr: dict[str, Any] = {
        "lighthouseVersion": "13.5.0",
        "requestedUrl": "http://a.test/",
        "finalDisplayedUrl": "http://a.test/",
        "runWarnings": [],
        "environment": {"benchmarkIndex": 1800.5},
        "categories": {"performance": {"score": 0.97}, "seo": {"score": None}},
        "audits": {
            "first-contentful-paint": {"numericValue": 800.0},
            "interactive": {"numericValue": 1200.0},
            "cumulative-layout-shift": {"numericValue": 0},
        },
        "configSettings": {"extraHeaders": {"Cookie": "sid=secret"}},
    }
    lhr.update(overrides)
    return lhr


def test_read_facts_scores_and_metrics() -> None:
    facts = read_facts(make_lhr())
    assert facts.scores == {"performance": 0.97, "seo": None}
    assert facts.metrics["fcp"] == 800.0
    assert facts.metrics["cls"] == 0.0
    assert facts.metrics["lcp"] is None
    assert facts.benchmark_index == 1800.5
    assert facts.error_code is None


def test_read_facts_runtime_error() -> None:
    facts = read_facts(make_lhr(runtimeError={"code": "NO_FCP", "message": "blank"}))
    assert facts.error_code == "NO_FCP"
    assert facts.error_message == "blank"


def test_read_facts_warns_on_redirect_to_other_host() -> None:
    facts = read_facts(make_lhr(finalDisplayedUrl="http://other.test/"))
    assert [warning["code"] for warning in facts.warnings] == [
        "REDIRECTED_TO_OTHER_HOST"
    ]


def test_read_facts_codes_slow_load_warning() -> None:
    text = (
        "The page loaded too slowly to finish within the time limit. "
        "Results may be incomplete."
    )
    facts = read_facts(make_lhr(runWarnings=[text]))
    assert facts.warnings == [{"code": "PAGE_LOADED_TOO_SLOWLY", "message": text}]


def test_redact_replaces_header_values() -> None:
    lhr = redact(make_lhr())
    assert lhr["configSettings"]["extraHeaders"] == {"Cookie": REDACTED}
