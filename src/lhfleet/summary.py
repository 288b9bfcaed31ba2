"""Summaries of a job for people: one self-contained HTML file, and Markdown.

The HTML file carries everything it needs: its styles, the job's numbers as
JSON, Chart.js and its box plot plugin (MIT, vendored under ``summary/vendor``
with their license headers) and the script that draws a chart of each URL's
scores and metrics across runs. It works offline; its only links are to the
runs' Lighthouse HTML reports, written relative to the summary's folder.
"""

from __future__ import annotations

import json
import logging
import os
from html import escape
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import quote, urlsplit

from lhfleet.console import noise_flag
from lhfleet.errors import StoreError

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "summary"
VENDOR = ASSETS / "vendor"
TIMING_KEYS = ("fcp", "lcp", "si", "tti", "tbt")
LABELS = {
    "fcp": "FCP",
    "lcp": "LCP",
    "si": "Speed Index",
    "tti": "TTI",
    "tbt": "TBT",
    "cls": "CLS",
    "benchmark_index": "benchmark index",
}


def _asset(path: Path) -> str:
    """Return a script or style to inline, checked not to end its element early."""
    text = path.read_text(encoding="utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        raise ValueError(
            f"{path} contains a closing script or style tag, so it cannot be "
            "inlined; escape the tag in the file."
        )
    return text


def _json_for_script(value: Any) -> str:
    # Inside <script>, "</" could end the element early; "<\/" means the same in JSON.
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


def report_link(location: str | None, folder: Path) -> str | None:
    """Return a link to a stored report that works from ``folder``."""
    if not location:
        return None
    if urlsplit(location).scheme in ("http", "https", "s3", "file"):
        return location
    relative = os.path.relpath(Path(location).resolve(), folder.resolve())
    return quote(Path(relative).as_posix())


def format_value(key: str, value: float | None) -> str:
    """Show a score as 0-100, a timing in whole ms, CLS with three decimals."""
    if value is None:
        return "–"
    if key == "cls":
        return f"{value:.3f}"
    if key in TIMING_KEYS or key == "benchmark_index":
        return f"{value:,.0f}"
    return f"{value * 100:.0f}"


def _label(key: str) -> str:
    return LABELS.get(key, key)


def chart_data(document: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Return the numbers the page's script draws, per URL and run."""
    settings = document["job"]["settings"]
    return {
        "categories": settings["categories"],
        "timings": list(TIMING_KEYS),
        "labels": {key: _label(key) for key in (*TIMING_KEYS, "cls")},
        "idle": settings.get("host_benchmark_index"),
        "ratio": settings.get("contention_ratio"),
        "urls": [
            {
                "index": entry["url_index"],
                "url": entry["url"],
                "runs": [_run_point(run, folder) for run in entry["runs"]],
            }
            for entry in document["urls"]
        ],
    }


def _run_point(run: dict[str, Any], folder: Path) -> dict[str, Any]:
    return {
        "id": run["id"],
        "index": run["index"],
        "ok": run["state"] == "succeeded",
        "scores": run["scores"],
        "metrics": run["metrics"],
        "benchmark": run["benchmark_index"],
        "contended": run.get("contended"),
        "report": report_link(run["report_html"], folder),
    }


def render_html(document: dict[str, Any], folder: Path) -> str:
    """Return the self-contained summary page of a results document."""
    job = document["job"]
    template = Template((ASSETS / "template.html").read_text(encoding="utf-8"))
    return template.substitute(
        title=escape(f"lhfleet job {job['id']}"),
        style=_asset(ASSETS / "summary.css"),
        header=_header(document),
        overview=_overview(document),
        sections="\n".join(_section(entry, folder) for entry in document["urls"]),
        data=_json_for_script(chart_data(document, folder)),
        chartjs=_asset(VENDOR / "chart.umd.min.js"),
        boxplot=_asset(VENDOR / "chartjs-chart-boxplot.umd.min.js"),
        script=_asset(ASSETS / "summary.js"),
    )


def write_html(document: dict[str, Any], output: Path) -> Path:
    """Write the summary page to ``output``; return its path."""
    folder = output.parent
    page = render_html(document, folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        output.write_text(page, encoding="utf-8")
    except OSError as error:
        raise StoreError(
            f"Could not write the summary to {output}: {error.strerror}. Pick "
            "another path with -o."
        ) from error
    logger.info("job %s: wrote the summary %s", document["job"]["id"], output)
    return output


def _header(document: dict[str, Any]) -> str:
    job = document["job"]
    settings = job["settings"]
    idle = settings.get("host_benchmark_index")
    host = (
        f"idle benchmark index {idle:,.0f}; runs below "
        f"{settings.get('contention_ratio', 0.8):.0%} of it are marked contended"
        if idle
        else "host not calibrated (run <code>lhfleet calibrate</code>), "
        "so contended runs cannot be told"
    )
    facts = [
        ("state", job["state"]),
        ("created", job["created_at"]),
        ("runs per URL", _runs_setting(settings)),
        ("preset", settings["preset"]),
        ("representative run", settings.get("representative", "lighthouse")),
        ("spread target", settings.get("spread_target", "")),
    ]
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in facts)
    return (
        f"<h1>lhfleet job <code>{escape(job['id'])}</code></h1>"
        f"<dl class=facts>{items}<dt>fidelity</dt><dd>{host}</dd></dl>"
    )


def _runs_setting(settings: dict[str, Any]) -> str:
    if settings.get("max_runs"):
        return f"auto, {settings['runs']} to {settings['max_runs']}"
    return str(settings["runs"])


def _overview(document: dict[str, Any]) -> str:
    categories = document["job"]["settings"]["categories"]
    keys = [*categories, "lcp", "tbt", "cls"]
    head = "".join(f"<th>{escape(_label(key))}</th>" for key in keys)
    rows = []
    for entry in document["urls"]:
        cells = "".join(
            f"<td class=num>{format_value(key, entry['median'].get(key))}</td>"
            for key in keys
        )
        rows.append(
            f"<tr class='{_flag_class(entry)}'><td><a href='#url-{entry['url_index']}'>"
            f"{escape(entry['url'])}</a></td>{cells}"
            f"<td class=num>{entry['valid_runs']}/{entry['total_runs']}</td>"
            f"<td>{_flags(entry)}</td></tr>"
        )
    return (
        "<table class=overview><thead><tr><th>URL</th>"
        f"{head}<th>valid runs</th><th>flags</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _flag_class(entry: dict[str, Any]) -> str:
    if entry["valid_runs"] == 0:
        return "failed"
    return "noisy" if entry.get("noisy") else ""


def _flags(entry: dict[str, Any]) -> str:
    flags = []
    spread = entry.get("spread") or {}
    if entry["valid_runs"] == 0:
        flags.append("<span class='badge bad'>no valid run</span>")
    elif entry.get("noisy"):
        label = noise_flag(entry)
        flags.append(
            f"<span class='badge warn'>{label}: {escape(spread['reason'])}</span>"
        )
    if entry.get("contended_runs"):
        flags.append(
            f"<span class='badge warn'>{entry['contended_runs']} contended</span>"
        )
    adaptive = entry.get("adaptive")
    if adaptive:
        met = "target met" if adaptive["target_met"] else "target not met"
        flags.append(f"<span class=badge>{adaptive['runs']} runs, {met}</span>")
    return " ".join(flags) or "<span class='badge ok'>ok</span>"


def _section(entry: dict[str, Any], folder: Path) -> str:
    number = entry["url_index"]
    charts = ""
    if entry["valid_runs"]:
        charts = (
            f"<div class=charts><figure><canvas id='scores-{number}'></canvas></figure>"
            f"<figure><canvas id='timings-{number}'></canvas></figure>"
            f"<figure><canvas id='bench-{number}'></canvas></figure></div>"
        )
    return (
        f"<section id='url-{number}'><h2>{escape(entry['url'])}</h2>"
        f"<p>{_flags(entry)}</p>{charts}"
        f"{_stats_table(entry)}{_runs_table(entry, folder)}</section>"
    )


def _stats_table(entry: dict[str, Any]) -> str:
    rows = []
    if not entry.get("statistics"):
        return ""
    for key, spread in entry["statistics"].items():
        cells = "".join(
            f"<td class=num>{format_value(key, spread[name])}</td>"
            for name in ("median", "p25", "p75", "min", "max")
        )
        cv = "–" if spread["cv"] is None else f"{spread['cv']:.1%}"
        rows.append(
            f"<tr><th>{escape(_label(key))}</th>{cells}<td class=num>{cv}</td>"
            f"<td class=num>{spread['count']}</td></tr>"
        )
    head = "".join(
        f"<th>{name}</th>" for name in ("median", "p25", "p75", "min", "max")
    )
    return (
        f"<table class=stats><thead><tr><th></th>{head}<th>CV</th><th>runs</th>"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _runs_table(entry: dict[str, Any], folder: Path) -> str:
    rows = []
    for run in entry["runs"]:
        link = report_link(run["report_html"], folder)
        report = f"<a class=report href='{escape(link)}'>report</a>" if link else "–"
        marks = []
        if run["id"] == entry.get("representative_run"):
            marks.append("<span class=badge>representative</span>")
        if run.get("contended"):
            marks.append("<span class='badge warn'>contended</span>")
        rows.append(
            f"<tr><td><code>{escape(run['id'])}</code></td>"
            f"<td>{escape(_state(run))}</td>"
            f"<td class=num>{format_value('benchmark_index', run['benchmark_index'])}"
            "</td>"
            f"<td>{' '.join(marks)}</td><td>{report}</td></tr>"
        )
    return (
        "<table class=runs><thead><tr><th>run</th><th>state</th>"
        "<th>benchmark index</th><th></th><th>Lighthouse report</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _state(run: dict[str, Any]) -> str:
    code = run.get("error_code")
    return f"{run['state']} ({code})" if code else str(run["state"])


def results_markdown(document: dict[str, Any]) -> str:
    """Return a job's per-URL results as a Markdown table."""
    job = document["job"]
    categories = job["settings"]["categories"]
    keys = [*categories, "lcp", "tbt", "cls"]
    header = ["URL", *(_label(key) for key in keys), "valid runs", "spread", "flags"]
    lines = [
        f"### lhfleet job `{job['id']}` ({job['state']})",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---", *(["---:"] * (len(header) - 2)), "---"]) + "|",
    ]
    for entry in document["urls"]:
        spread = entry.get("spread") or {}
        value = spread.get("value")
        spread_text = "–" if value is None else f"{spread['measure']} {value:.3g}"
        lines.append(
            "| "
            + " | ".join(
                [
                    _md(entry["url"]),
                    *(format_value(key, entry["median"].get(key)) for key in keys),
                    f"{entry['valid_runs']}/{entry['total_runs']}",
                    spread_text,
                    _md_flags(entry),
                ]
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _md_flags(entry: dict[str, Any]) -> str:
    flags = []
    if entry["valid_runs"] == 0:
        flags.append("no valid run")
    elif entry.get("noisy"):
        flags.append(noise_flag(entry))
    if entry.get("contended_runs"):
        flags.append(f"{entry['contended_runs']} contended")
    adaptive = entry.get("adaptive")
    if adaptive:
        met = "target met" if adaptive["target_met"] else "target not met"
        flags.append(f"{adaptive['runs']} runs, {met}")
    return ", ".join(flags)
