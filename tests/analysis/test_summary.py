"""The HTML summary and Markdown: contents, offline, and drawn in a real browser."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from lhfleet.summary import VENDOR, render_html, report_link, results_markdown
from tests.analysis.conftest import RealJobs, lhfleet
from tests.analysis.png import pixels

CHROMIUM = "/usr/bin/chromium"


def document(**url: Any) -> dict[str, Any]:
    run = {
        "id": "job-0-0", "index": 0, "state": "succeeded", "error_code": None,
        "scores": {"performance": 0.9}, "metrics": {"lcp": 1200.0, "tbt": 0.0},
        "benchmark_index": 1500.0, "contended": False,
        "report_html": "/data/reports/job/job-0-0.a1.report.html",
    }  # fmt: skip
    entry = {
        "url": "http://a.test/</script><b>", "url_index": 0, "valid_runs": 1,
        "total_runs": 1, "representative_run": "job-0-0",
        "median": {"performance": 0.9},
        "runs": [run], "statistics": {}, "noisy": True, "contended_runs": 0,
        "spread": {"reason": "1 valid value(s) of performance; 2 are needed",
                   "measure": "cv", "value": None},
        "adaptive": None,
    }  # fmt: skip
    entry.update(url)
    settings = {
        "runs": 1, "preset": "mobile", "categories": ["performance"],
        "representative": "lighthouse", "spread_target": "performance:cv=0.05",
        "host_benchmark_index": None, "contention_ratio": 0.8,
    }  # fmt: skip
    job = {"id": "job", "state": "completed", "created_at": "now", "settings": settings}
    return {"job": job, "urls": [entry]}


def test_report_link_is_relative() -> None:
    link = report_link("/data/reports/job/a b.html", Path("/data/out"))
    assert link == "../reports/job/a%20b.html"


def test_report_link_keeps_urls() -> None:
    assert (
        report_link("https://bucket.test/r.html", Path("/x"))
        == "https://bucket.test/r.html"
    )


def test_html_escapes_url() -> None:
    page = render_html(document(), Path("/data"))
    assert "</script><b>" not in page
    assert "http://a.test/&lt;/script&gt;&lt;b&gt;" in page


def test_html_inlines_chart_library() -> None:
    page = render_html(document(), Path("/data"))
    assert "Chart.js v4" in page
    assert "@sgratzl/chartjs-chart-boxplot" in page
    assert "Released under the MIT License" in page


def test_html_loads_nothing_from_network() -> None:
    page = render_html(document(), Path("/data"))
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)


def test_html_links_run_report() -> None:
    page = render_html(document(), Path("/data"))
    assert "href='reports/job/job-0-0.a1.report.html'" in page


def test_html_flags_url_with_unknown_spread() -> None:
    text = render_html(document(), Path("/data"))
    assert "spread unknown: 1 valid value(s)" in text


def test_html_flags_url_without_valid_run() -> None:
    page = render_html(document(valid_runs=0), Path("/data"))
    assert "no valid run" in page
    assert "<canvas" not in page


def test_vendored_files_keep_license_headers() -> None:
    for name in ("chart.umd.min.js", "chartjs-chart-boxplot.umd.min.js"):
        head = (VENDOR / name).read_text(encoding="utf-8")[:400]
        assert "MIT License" in head


def test_markdown_table() -> None:
    text = results_markdown(document(url="http://a.test/x|y"))
    assert "| http://a.test/x\\|y | 90 | – | – | – | 1/1 | – | spread unknown |" in text


def _is_drawn(png: bytes) -> bool:
    """True when a screenshot has many colours and is mostly not background."""
    image = pixels(png)
    background = max(set(image), key=image.count)
    drawn = sum(pixel != background for pixel in image)
    return len(set(image)) > 20 and drawn / len(image) > 0.02


def test_blank_screenshot_is_not_drawn() -> None:
    width, height = 4, 2
    rows = b"".join(b"\x00" + b"\xff\xff\xff" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + b"\0\0\0\0"

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    assert not _is_drawn(png)


@pytest.mark.lighthouse
def test_summary_in_real_browser(real_jobs: RealJobs, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    output = tmp_path / "out" / "summary.html"
    completed = lhfleet(
        "report", real_jobs.adaptive, "-o", str(output),
        "--data-dir", str(real_jobs.data_dir),
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    outside: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox"]
        )
        context = browser.new_context(viewport={"width": 1200, "height": 900})

        def only_files(route: Any) -> None:
            if route.request.url.startswith("file:"):
                route.continue_()
            else:
                outside.append(route.request.url)
                route.abort()

        context.route("**/*", only_files)
        page = context.new_page()
        page.goto(output.as_uri())
        page.wait_for_function("window.lhfleetCharts >= 3", timeout=30_000)
        shots = [
            page.locator(f"#{name}-0").screenshot()
            for name in ("scores", "timings", "bench")
        ]
        links = page.eval_on_selector_all("a.report", "links => links.map(a => a.href)")
        from_summary = list(outside)
        titles = []
        for link in links:
            report = context.new_page()
            report.goto(link)
            titles.append(report.title())
            report.close()
        browser.close()
    assert from_summary == []
    assert [_is_drawn(shot) for shot in shots] == [True, True, True]
    assert len(links) == 3
    assert set(titles) == {"Lighthouse Report"}


def test_markdown_adaptive_flag() -> None:
    adaptive = {"min_runs": 2, "max_runs": 3, "runs": 3, "target_met": False}
    text = results_markdown(document(adaptive=adaptive))
    assert "spread unknown, 3 runs, target not met |" in text


def test_markdown_flags_noisy_url() -> None:
    spread = {"reason": "cv 0.2 is over the limit 0.05", "measure": "cv", "value": 0.2}
    text = results_markdown(document(spread=spread))
    assert "| noisy |" in text
