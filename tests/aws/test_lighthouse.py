"""One job through the Lambda entry points with real Lighthouse and Chromium.

The handlers build their engine from LHFLEET_AWS_* variables, as in Lambda;
the worker audits two tiny pages served on loopback.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lhfleet.aws import handlers
from lhfleet.aws.config import AwsClients, AwsConfig
from lhfleet.aws.reports import summary_key
from tests.aws.harness import LambdaContext, QueuePoller, StreamPoller

PAGE = b"<!doctype html><html lang=en><title>%s</title><h1>%s</h1></html>"


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        name = self.path.strip("/").encode() or b"home"
        body = PAGE % (name, name)
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def lambda_environment(config: AwsConfig, monkeypatch: pytest.MonkeyPatch) -> AwsConfig:
    monkeypatch.setenv("LHFLEET_AWS_JOBS_TABLE", config.jobs_table)
    monkeypatch.setenv("LHFLEET_AWS_RUNS_TABLE", config.runs_table)
    monkeypatch.setenv("LHFLEET_AWS_BUCKET", config.bucket)
    monkeypatch.setenv("LHFLEET_AWS_QUEUE_URL", config.queue_url)
    monkeypatch.setattr(handlers, "_engine", None)
    monkeypatch.setattr(handlers, "_worker", None)
    return config


@pytest.mark.lighthouse
def test_job_audits_real_pages(
    lambda_environment: AwsConfig, clients: AwsClients, site: str
) -> None:
    config = lambda_environment
    response = handlers.submit_handler(
        {
            "urls": [f"{site}/one", f"{site}/two"],
            "settings": {"runs": 1, "categories": ["performance"], "retries": 1},
        },
        LambdaContext(remaining_seconds=60),
    )
    job_id = response["job_id"]
    workers = QueuePoller(clients, config.queue_url, handlers.worker_handler)
    stream = StreamPoller(clients, config.jobs_table, handlers.completion_handler)
    workers.drain(
        lambda: handlers.engine().store.job_values(job_id)["settled"] == 2,
        timeout=240,
    )
    stream.poll_once()
    document = json.loads(handlers.engine().reports.read(summary_key(job_id)))
    first_run = document["urls"][0]["runs"][0]
    report = gzip.decompress(
        handlers.engine().reports.read(first_run["report_json"].split("/", 3)[3])
    )
    assert response["fanout_done"] is True
    assert document["job"]["state"] == "completed"
    assert [entry["valid_runs"] for entry in document["urls"]] == [1, 1]
    assert first_run["scores"]["performance"] is not None
    assert first_run["metrics"]["fcp"] > 0
    assert json.loads(report)["lighthouseVersion"] == "13.5.0"
    assert workers.crashes == 0
