"""End to end with real Lighthouse: lhfleet serve restarted mid-job, and the dashboard.

Two small jobs run on a loopback test page, performance category only.
The first is submitted over the API to a ``lhfleet serve`` process that
is stopped after the first run and started again. The second is
submitted through the dashboard's form in Debian's Chromium, driven by
Playwright.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from lhfleet.api.settings import ServerSettings
from lhfleet.client import LhfleetClient, follow
from lhfleet.hooks import DELIVERY_HEADER, SIGNATURE_HEADER, verify_signature
from lhfleet.models import JobState
from tests.api.conftest import Receiver, make_server, serve_in_thread
from tests.conftest import PageServer

pytestmark = pytest.mark.lighthouse

CHROMIUM = "/usr/bin/chromium"
SECRET = "e2e-hook-secret"
START_TIMEOUT = 60.0
JOB_TIMEOUT = 240.0


def free_port() -> int:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        port: int = holder.getsockname()[1]
        return port


class ServeProcess:
    """``lhfleet serve`` in a subprocess on a data folder, as an operator runs it."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        self.log = data_dir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = port

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable, "-m", "lhfleet", "serve",
                    "--port", str(self.port), "--concurrency", "1",
                    "--data-dir", str(self.data_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError(f"lhfleet serve did not start: {self.log.read_text()}")

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=90)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[ServeProcess]:
    running = ServeProcess(tmp_path / "data", free_port())
    yield running
    running.kill()


def wait_for_settled(client: LhfleetClient, job_id: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT
    while time.monotonic() < deadline:
        job = client.job(job_id)
        if job["counts"]["succeeded"] + job["counts"]["failed"] >= count:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not settle {count} runs")


def test_restarted_server_finishes_job(
    serve_process: ServeProcess, page_server: PageServer, receiver: Receiver
) -> None:
    server = make_server(serve_process.data_dir)
    workspace, secret = server.workspace, server.user
    serve_process.start()

    request = {
        "urls": [page_server.url("/?case=api-restart")],
        "runs": 2,
        "settings": {"categories": ["performance"]},
        "hooks": [{"type": "webhook", "url": receiver.url, "secret": SECRET}],
    }
    with LhfleetClient(serve_process.url, secret) as client:
        job_id = client.submit(request)["id"]
        wait_for_settled(client, job_id, 1)
    stopped_with = serve_process.stop()
    interrupted = workspace.store.get_job(job_id)

    serve_process.start()
    with LhfleetClient(serve_process.url, secret) as client:
        finished = follow(client, job_id, Console(quiet=True))
        hooks = client.hooks(job_id)["deliveries"]
        results = client.results(job_id)
        run_id = results["urls"][0]["representative_run"]
        report = client.http.get(f"/api/jobs/{job_id}/runs/{run_id}/report.html")
    received = receiver.wait_for(1)
    serve_process.stop()

    assert stopped_with in (0, -signal.SIGTERM)
    assert (
        "lhfleet server stopped" in (serve_process.data_dir / "lhfleet.log").read_text()
    )
    assert interrupted.state is JobState.RUNNING
    assert finished.succeeded == 2
    assert [hook["state"] for hook in hooks] == ["delivered"]
    assert len(received) == 1
    assert verify_signature(
        SECRET, received[0].body, received[0].headers[SIGNATURE_HEADER]
    )
    assert received[0].headers[DELIVERY_HEADER] == f"{job_id}-hook0"
    assert results["urls"][0]["valid_runs"] == 2
    assert report.status_code == 200
    assert "<title>Lighthouse Report</title>" in report.text
    assert secret not in serve_process.log.read_text()


def test_dashboard_submits_and_shows_job(
    tmp_path: Path, page_server: PageServer
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    server = make_server(tmp_path / "data", ServerSettings(concurrency=1))
    live = serve_in_thread(server, start_runner=True)
    site = next(live)
    outside: list[str] = []
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=["--no-sandbox"]
            )
            context = browser.new_context()

            def only_local(route: Any) -> None:
                url = route.request.url
                if url.startswith((site.url, page_server.url("/"))):
                    route.continue_()
                else:
                    outside.append(url)
                    route.abort()

            context.route("**/*", only_local)
            page = context.new_page()
            page.goto(f"{site.url}/login")
            page.fill("#token", server.user)
            page.click("button[type=submit]")
            page.fill("#urls", page_server.url("/?case=api-dashboard"))
            page.fill("#runs", "1")
            page.fill("#categories", "performance")
            page.click("#submit-job button[type=submit]")
            page.wait_for_url("**/jobs/*")
            page.wait_for_selector(
                "#job[data-state=completed]", timeout=JOB_TIMEOUT * 1000
            )
            settled = page.text_content("#count-settled")
            charts = page.locator("svg.chart").count()
            with context.expect_page() as opened:
                page.click("a.report")
            report = opened.value
            report.wait_for_load_state()
            title = report.title()
            browser.close()
    finally:
        live.close()
    assert outside == []
    assert settled == "1"
    assert charts == 2
    assert title == "Lighthouse Report"
