"""Python hook targets for the tests: they record what they were called with."""

from __future__ import annotations

from typing import Any

calls: list[dict[str, Any]] = []


def record(summary: dict[str, Any]) -> None:
    calls.append(summary)


def explode(summary: dict[str, Any]) -> None:
    raise RuntimeError(f"hook of job {summary['job']['id']} failed on purpose")
