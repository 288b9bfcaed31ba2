"""Reading a Lighthouse result (LHR): scores, metrics, warnings and errors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

METRIC_AUDITS = {
    "fcp": "first-contentful-paint",
    "lcp": "largest-contentful-paint",
    "tbt": "total-blocking-time",
    "cls": "cumulative-layout-shift",
    "si": "speed-index",
    "tti": "interactive",
}
"""Result keys of the metrics lhfleet keeps, and the Lighthouse audit of each."""

REDACTED = "[redacted]"


@dataclass(frozen=True)
class ReportFacts:
    """What lhfleet keeps of one Lighthouse result besides the report itself."""

    error_code: str | None
    error_message: str | None
    scores: dict[str, float | None] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    benchmark_index: float | None = None
    lighthouse_version: str | None = None
    final_url: str | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)
    conditions: dict[str, Any] = field(default_factory=dict)
    """Measurement conditions of the run: concurrency, host load, window wait."""


def read_facts(lhr: dict[str, Any]) -> ReportFacts:
    """Return the scores, metrics, warnings and runtime error of a result."""
    runtime_error = lhr.get("runtimeError") or {}
    final_url = lhr.get("finalDisplayedUrl") or lhr.get("finalUrl")
    return ReportFacts(
        error_code=runtime_error.get("code"),
        error_message=runtime_error.get("message"),
        scores={
            key: _finite(category.get("score"))
            for key, category in (lhr.get("categories") or {}).items()
        },
        metrics=_metrics(lhr.get("audits") or {}),
        benchmark_index=_finite((lhr.get("environment") or {}).get("benchmarkIndex")),
        lighthouse_version=lhr.get("lighthouseVersion"),
        final_url=final_url,
        warnings=_warnings(lhr, final_url),
    )


def redact(lhr: dict[str, Any]) -> dict[str, Any]:
    """Replace extra header values in the result's settings, in place, and return it.

    Lighthouse copies the extra headers it was given into ``configSettings``,
    so a stored report would otherwise carry tokens and cookies.
    """
    settings = lhr.get("configSettings")
    if isinstance(settings, dict) and isinstance(settings.get("extraHeaders"), dict):
        settings["extraHeaders"] = dict.fromkeys(settings["extraHeaders"], REDACTED)
    return lhr


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _metrics(audits: dict[str, Any]) -> dict[str, float | None]:
    return {
        key: _finite((audits.get(audit_id) or {}).get("numericValue"))
        for key, audit_id in METRIC_AUDITS.items()
    }


def _warnings(lhr: dict[str, Any], final_url: str | None) -> list[dict[str, str]]:
    warnings = [
        {"code": warning_code(text), "message": text}
        for text in lhr.get("runWarnings") or []
        if isinstance(text, str)
    ]
    requested = lhr.get("requestedUrl")
    # A failed load ends on Chrome's error page (chrome-error://...), which
    # is no redirect, so only web URLs are compared.
    if (
        requested
        and final_url
        and urlsplit(final_url).scheme in ("http", "https")
        and _host(requested) != _host(final_url)
    ):
        warnings.append(
            {
                "code": "REDIRECTED_TO_OTHER_HOST",
                "message": f"The page was requested at {requested} "
                f"and ended on another host, at {final_url}.",
            }
        )
    return warnings


def _host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


_WARNING_MARKERS = (
    # The run warnings are localized text, so the runner always uses the
    # en-US locale and classes them by stable fragments of that text.
    ("loaded too slowly", "PAGE_LOADED_TOO_SLOWLY"),
    ("did not fully load", "PAGE_LOADED_TOO_SLOWLY"),
    ("was redirected", "REDIRECTED"),
    ("stored data", "STORED_DATA_AFFECTS_LOADING"),
    ("cpu", "HOST_CPU_SLOW"),
    ("chrome extensions", "CHROME_EXTENSIONS"),
)


def warning_code(text: str) -> str:
    """Return a stable code for a Lighthouse run warning (en-US text)."""
    lowered = text.lower()
    for marker, code in _WARNING_MARKERS:
        if marker in lowered:
            return code
    return "LIGHTHOUSE_WARNING"


SCREENSHOT_AUDITS = ("screenshot-thumbnails", "final-screenshot")


def strip_screenshots(lhr: dict[str, Any]) -> dict[str, Any]:
    """Remove the embedded screenshots from a result, in place, and return it."""
    lhr.pop("fullPageScreenshot", None)
    audits = lhr.get("audits") or {}
    for audit_id in SCREENSHOT_AUDITS:
        audit = audits.get(audit_id)
        if isinstance(audit, dict):
            audit.pop("details", None)
    return lhr
