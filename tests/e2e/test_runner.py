"""The Node runner of a worker slot, driven through the Auditor with real Lighthouse."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from lhfleet import codes
from lhfleet.auditor import Auditor, AuditRequest
from lhfleet.models import JobSettings
from lhfleet.runtime import find_runtime
from lhfleet.window import MeasurementWindow
from tests.conftest import PageServer

pytestmark = pytest.mark.lighthouse

SETTINGS = JobSettings(runs=1, categories=("performance",), timeout=90.0, retries=0)


@pytest.fixture
def auditor(tmp_path: Path) -> Iterator[Auditor]:
    window = MeasurementWindow(tmp_path / "window", prioritize=False)
    made = Auditor(find_runtime(), tmp_path / "scratch", window)
    (tmp_path / "scratch").mkdir()
    yield made
    made.close()


def test_one_runner_serves_audits_and_reports(
    auditor: Auditor, page_server: PageServer
) -> None:
    request = AuditRequest(page_server.url("/"), SETTINGS)
    first = auditor.audit(request, "r1", "slot-a")
    runner = auditor.runner_for("slot-a")
    pid = runner.pid
    second = auditor.audit(request, "r2", "slot-a")
    assert first.error_code is None, first.error_message
    assert second.error_code is None, second.error_message
    assert runner.pid == pid, "the runner was restarted between audits"
    assert first.conditions["timings"]["window"] > 0
    html = auditor.render_html(b'{"lighthouseVersion": "13.5.0"}')
    assert "<html" in html.lower()
    assert auditor.runner_for("slot-a").pid == pid


def test_killed_runner_is_replaced(auditor: Auditor, page_server: PageServer) -> None:
    request = AuditRequest(page_server.url("/"), SETTINGS)
    assert auditor.audit(request, "r1", "slot-a").error_code is None
    runner = auditor.runner_for("slot-a")
    old = runner.pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    if psutil.pid_exists(old):
        psutil.Process(old).wait(timeout=10)
    result = auditor.audit(request, "r2", "slot-a")
    assert result.error_code is None, result.error_message
    assert runner.pid not in (None, old)


def test_deadline_kills_runner_and_chrome(
    auditor: Auditor, page_server: PageServer, tmp_path: Path
) -> None:
    quick = JobSettings(runs=1, categories=("performance",), timeout=3.0, retries=0)
    stop = threading.Event()
    result = auditor.audit(AuditRequest(page_server.url("/"), quick), "r1", "s", stop)
    assert result.error_code == codes.RUN_TIMEOUT
    assert auditor.runner_for("s").pid is None
    leftovers = [
        process.pid
        for process in psutil.process_iter(["cmdline"])
        if any(str(tmp_path) in part for part in process.info["cmdline"] or [])
    ]
    assert leftovers == []
