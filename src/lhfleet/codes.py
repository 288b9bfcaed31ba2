"""Error codes of failed runs, and which of them are worth another attempt.

Lighthouse's own codes come from the result's ``runtimeError.code``; the
runner adds its own for failures that leave no result. Decisions use the
codes only, never the localized messages, except for the HTTP status and
``net::ERR_*`` name that Lighthouse appends to its document-request errors.
"""

from __future__ import annotations

import re

RUN_TIMEOUT = "RUN_TIMEOUT"
CHROME_LAUNCH_FAILED = "CHROME_LAUNCH_FAILED"
CHROME_CRASHED = "CHROME_CRASHED"
NO_RESULT = "LIGHTHOUSE_NO_RESULT"
INVALID_URL = "INVALID_URL"
RUNNER_INTERRUPTED = "RUNNER_INTERRUPTED"
JOB_DEADLINE = "JOB_DEADLINE"
JOB_CANCELLED = "JOB_CANCELLED"
DEAD_LETTERED = "RUN_DEAD_LETTERED"
LOGIN_SCRIPT_FAILED = "LOGIN_SCRIPT_FAILED"

TRANSIENT = frozenset(
    {
        RUN_TIMEOUT,
        CHROME_CRASHED,
        CHROME_LAUNCH_FAILED,
        NO_RESULT,
        "TARGET_CRASHED",
        "PROTOCOL_TIMEOUT",
        "NO_TRACING_STARTED",
        "TRACING_ALREADY_STARTED",
        "NO_NAVSTART",
        "NO_DCL",
        "NO_RESOURCE_REQUEST",
        "PARSING_PROBLEM",
        "READ_FAILED",
        "NO_SCREENSHOTS",
        "SPEEDINDEX_OF_ZERO",
        "NO_SPEEDLINE_FRAMES",
        "INVALID_SPEEDLINE",
        "LANTERN_NO_NETWORK",
    }
)
"""Codes retried with a fresh Chrome after a backoff."""

PERMANENT = frozenset(
    {
        INVALID_URL,
        JOB_DEADLINE,
        JOB_CANCELLED,
        DEAD_LETTERED,
        LOGIN_SCRIPT_FAILED,
        "NOT_HTML",
        "INSECURE_DOCUMENT_REQUEST",
        "CHROME_INTERSTITIAL_ERROR",
        "DNS_FAILURE",
        "NO_DOCUMENT_REQUEST",
        "NO_FCP",
        "PAGE_HUNG",
        "NO_LCP",
    }
)
"""Codes never retried: another attempt would fail the same way."""

_TRANSIENT_NET_ERRORS = frozenset(
    {
        "ERR_CONNECTION_RESET",
        "ERR_CONNECTION_CLOSED",
        "ERR_CONNECTION_ABORTED",
        "ERR_CONNECTION_TIMED_OUT",
        "ERR_TIMED_OUT",
        "ERR_EMPTY_RESPONSE",
        "ERR_NETWORK_CHANGED",
        "ERR_NETWORK_IO_SUSPENDED",
        "ERR_HTTP2_PROTOCOL_ERROR",
        "ERR_QUIC_PROTOCOL_ERROR",
        "ERR_INCOMPLETE_CHUNKED_ENCODING",
    }
)

_STATUS = re.compile(r"[Ss]tatus code: (\d{3})|(\d{3})\)?\s*$")
_NET_ERROR = re.compile(r"net::(ERR_[A-Z0-9_]+)")


def http_status(message: str | None) -> int | None:
    """Return the HTTP status that ends an ERRORED_DOCUMENT_REQUEST message."""
    match = _STATUS.search(message or "")
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def net_error(message: str | None) -> str | None:
    """Return the ``ERR_*`` name in a FAILED_DOCUMENT_REQUEST message."""
    match = _NET_ERROR.search(message or "")
    return match.group(1) if match else None


def is_transient(code: str, message: str | None = None) -> bool:
    """Tell whether a failure with this code is worth another attempt."""
    if code == "ERRORED_DOCUMENT_REQUEST":
        status = http_status(message)
        return status is not None and (status >= 500 or status in (408, 429))
    if code == "FAILED_DOCUMENT_REQUEST":
        return net_error(message) in _TRANSIENT_NET_ERRORS
    if code in PERMANENT:
        return False
    return code in TRANSIENT
