"""Fixtures of the analysis tests: hand-made runs, SQL stores, and real jobs.

The real jobs are made once per session, with real Lighthouse and Chromium
against pages served on loopback. There are two jobs of the same two pages
and a job in which one page blocks its main thread. An adaptive job audits
a page whose blocking time changes on every load.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lhfleet.models import Run, RunState
from lhfleet.store.sql import SqlJobStore, sqlite_url

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
LHFLEET = [sys.executable, "-m", "lhfleet"]


def make_run(
    index: int,
    scores: dict[str, float | None] | None = None,
    metrics: dict[str, float | None] | None = None,
    state: RunState = RunState.SUCCEEDED,
    benchmark: float | None = None,
    url_index: int = 0,
) -> Run:
    """Return a hand-made run of URL ``url_index`` of job ``job``."""
    return Run(
        id=f"job-{url_index}-{index}",
        job_id="job",
        url_index=url_index,
        url=f"http://a.test/{url_index}",
        index=index,
        state=state,
        attempts=1,
        scores=scores if scores is not None else {},
        metrics=metrics if metrics is not None else {},
        benchmark_index=benchmark,
    )


def _postgres_available() -> bool:
    try:
        engine = sa.create_engine(PG_ADMIN)
        with engine.connect():
            pass
        engine.dispose()
    except sa.exc.OperationalError:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlJobStore]:
    """A job store on real SQLite, then on real PostgreSQL (a fresh database)."""
    if request.param == "sqlite":
        store = SqlJobStore(sqlite_url(tmp_path / "jobs.db"))
        yield store
        store.close()
        return
    if not _postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"lhfleet_analysis_{tmp_path.name.lower().replace('-', '_')}"[:60]
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    store = SqlJobStore(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}")
    yield store
    store.close()
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def blocking_page(milliseconds: int) -> bytes:
    """Return a page that keeps its main thread busy a while after it loads.

    The work starts after the load event, past the first paint, so that it
    counts in the total blocking time rather than delaying the paint.
    """
    script = (
        "addEventListener('load', function () { setTimeout(function () {"
        f"var end = performance.now() + {milliseconds};"
        "while (performance.now() < end) {} }, 50); });"
    )
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width'>"
        "<title>Work</title></head><body><h1>Work</h1>"
        f"<p>A paragraph of text.</p><script>{script}</script></body></html>"
    ).encode()


STATIC_PAGE = (
    b"<!doctype html><html lang=en><head><meta charset=utf-8>"
    b"<meta name=viewport content='width=device-width'><title>Static</title>"
    b"</head><body><h1>Static</h1><p>Nothing but text.</p></body></html>"
)


@dataclass
class Pages:
    """Loopback pages: /static.html, /work.html (blocks ``block_ms``), /noisy.html."""

    block_ms: int = 0
    port: int = 0
    hits: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def body(self, path: str) -> bytes | None:
        if path == "/static.html":
            return STATIC_PAGE
        if path == "/work.html":
            return blocking_page(self.block_ms)
        if path == "/noisy.html":
            return blocking_page(random.choice([0, 150, 400, 700]))
        return None


@pytest.fixture(scope="session")
def pages() -> Iterator[Pages]:
    state = Pages()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits.append(self.path)
            body = state.body(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body or b"not found")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def lhfleet(
    *arguments: str, cwd: Path | None = None, timeout: float = 420
) -> subprocess.CompletedProcess[str]:
    """Run the lhfleet command in a subprocess and return what it printed."""
    return subprocess.run(
        [*LHFLEET, *arguments],
        cwd=cwd,
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


LHCI_CONFIG = {
    "ci": {
        "collect": {"numberOfRuns": 3},
        "assert": {
            "assertions": {
                "categories:performance": ["error", {"minScore": 0.9}],
                "total-blocking-time": [
                    "warn",
                    {"maxNumericValue": 300, "aggregationMethod": "median"},
                ],
                "first-contentful-paint": ["off"],
            }
        },
    }
}


@dataclass(frozen=True)
class RealJobs:
    """Jobs that ran for real, in one data directory, and how each command ended."""

    data_dir: Path
    work: Path
    first: str
    second: str
    slowed: str
    adaptive: str
    slowed_run: subprocess.CompletedProcess[str]
    adaptive_run: subprocess.CompletedProcess[str]
    calibrate_run: subprocess.CompletedProcess[str]
    seconds: float


def _job_id(completed: subprocess.CompletedProcess[str]) -> str:
    document = json.loads(completed.stdout)
    return str(document["job"]["id"])


def _checked(completed: subprocess.CompletedProcess[str]) -> str:
    assert completed.returncode == 0, completed.stderr[-3000:]
    return _job_id(completed)


@pytest.fixture(scope="session")
def real_jobs(pages: Pages, tmp_path_factory: pytest.TempPathFactory) -> RealJobs:
    """Run the session's real jobs (19 audits in all) and return their ids."""
    started = time.monotonic()
    work = tmp_path_factory.mktemp("analysis-jobs")
    data = work / "data"
    (work / "lhfleet.toml").write_text(
        'runs = 2\ncategories = ["performance"]\nconcurrency = 2\nretries = 1\n',
        encoding="utf-8",
    )
    (work / "lighthouserc.json").write_text(json.dumps(LHCI_CONFIG), encoding="utf-8")
    both = [pages.url("/static.html"), pages.url("/work.html")]
    common = ["--data-dir", str(data), "--json"]

    calibrate_run = lhfleet("calibrate", "--samples", "1", "--data-dir", str(data))
    # The config's runs = 2 is overridden by --runs 3 on the command line.
    first = _checked(lhfleet("run", *both, "--runs", "3", *common, cwd=work))
    second = _checked(lhfleet("run", *both, "--runs", "3", *common, cwd=work))

    pages.block_ms = 1500
    slowed_run = lhfleet(
        "run", pages.url("/work.html"), "--runs", "3", "--assert", *common, cwd=work
    )
    pages.block_ms = 0

    adaptive_run = lhfleet(
        "run",
        pages.url("/noisy.html"),
        "--runs",
        "auto",
        "--min-runs",
        "2",
        "--max-runs",
        "3",
        "--target-spread",
        "tbt:cv=0.01",
        "--concurrency",
        "1",
        *common,
        cwd=work,
    )
    return RealJobs(
        data_dir=data,
        work=work,
        first=first,
        second=second,
        slowed=_job_id(slowed_run),
        adaptive=_job_id(adaptive_run),
        slowed_run=slowed_run,
        adaptive_run=adaptive_run,
        calibrate_run=calibrate_run,
        seconds=time.monotonic() - started,
    )
