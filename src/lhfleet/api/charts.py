"""Small inline SVG charts of one URL's runs, drawn on the server.

Each chart is a row of bars, one per run in run order: the height is the
run's value, the representative run is drawn darker and a failed run is a
red cross. Nothing is loaded from elsewhere, so the dashboard works offline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from markupsafe import Markup, escape

WIDTH = 160
HEIGHT = 36
GAP = 2


def _scaled_score(run: dict[str, Any], key: str) -> float | None:
    value = run["scores"].get(key)
    return None if value is None else float(value) * 100


def _metric(run: dict[str, Any], key: str) -> float | None:
    value = run["metrics"].get(key)
    return None if value is None else float(value)


def score_chart(entry: dict[str, Any], category: str) -> Markup:
    """Return the bars of one category's score (0 to 100) for each run of a URL."""
    return _bars(entry, lambda run: _scaled_score(run, category), 100.0, category, "")


def metric_chart(entry: dict[str, Any], metric: str, unit: str = "ms") -> Markup:
    """Return the bars of one metric for each run of a URL, scaled to its maximum."""
    values = [_metric(run, metric) for run in entry["runs"]]
    top = max((value for value in values if value is not None), default=0.0)
    return _bars(entry, lambda run: _metric(run, metric), top or 1.0, metric, unit)


def _bars(
    entry: dict[str, Any],
    value_of: Callable[[dict[str, Any]], float | None],
    top: float,
    label: str,
    unit: str,
) -> Markup:
    runs = entry["runs"]
    if not runs:
        return Markup("")
    width = max(4.0, (WIDTH - GAP * len(runs)) / len(runs))
    shapes = []
    for number, run in enumerate(runs):
        x = number * (width + GAP)
        value = value_of(run)
        title = _title(run, label, value, unit)
        if run["state"] == "failed" or value is None:
            shapes.append(_cross(x, width, title))
            continue
        height = max(1.0, HEIGHT * min(value, top) / top)
        kind = "rep" if run["id"] == entry["representative_run"] else "run"
        shapes.append(
            f'<rect class="bar {kind}" x="{x:.1f}" y="{HEIGHT - height:.1f}" '
            f'width="{width:.1f}" height="{height:.1f}"><title>{title}</title></rect>'
        )
    # Every value in the markup is a number or passed through escape().
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="{escape(label)} per run">'
        + "".join(shapes)
        + "</svg>"
    )


def _cross(x: float, width: float, title: str) -> str:
    middle = x + width / 2
    return (
        f'<g class="failed"><title>{title}</title>'
        f'<line x1="{middle - 3:.1f}" y1="{HEIGHT - 9}" x2="{middle + 3:.1f}" '
        f'y2="{HEIGHT - 3}"/><line x1="{middle + 3:.1f}" y1="{HEIGHT - 9}" '
        f'x2="{middle - 3:.1f}" y2="{HEIGHT - 3}"/></g>'
    )


def _title(run: dict[str, Any], label: str, value: float | None, unit: str) -> str:
    if run["state"] == "failed":
        return str(escape(f"run {run['index']}: failed, {run['error_code']}"))
    shown = "–" if value is None else f"{value:,.0f}{' ' + unit if unit else ''}"
    return str(escape(f"run {run['index']}: {label} {shown}"))
