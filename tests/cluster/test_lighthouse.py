"""End to end: `lhfleet run --engine celery`, two workers, real Lighthouse.

PostgreSQL stores the job, Redis carries the tasks, moto's S3 server keeps
the reports, and the workers audit tiny pages served on loopback.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from lhfleet.reports.s3 import S3ReportStore
from lhfleet.store.sql import SqlJobStore
from tests.cluster.harness import LHFLEET, ClusterFactory, Database
from tests.cluster.test_workers import AUDITING, COMPLETING

PAGE = (
    b"<!doctype html><html lang=en><head><title>Tiny page</title>"
    b"<meta name=viewport content='width=device-width'></head>"
    b"<body><h1>Tiny page</h1><p>Served on loopback for lhfleet's tests.</p>"
    b"</body></html>"
)


class TinyPages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def pages() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TinyPages)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.lighthouse
def test_cluster_job_with_real_lighthouse(
    make_cluster: ClusterFactory,
    database: Database,
    redis_broker: str,
    bucket: str,
    pages: str,
) -> None:
    cluster = make_cluster(
        database.url(),
        redis_broker,
        f"s3://{bucket}/lh",
        LHFLEET_VISIBILITY_TIMEOUT="600",
    )
    workers = cluster.start_workers(2, "--concurrency", "1")
    command = [*LHFLEET, "run", "--engine", "celery", "--json"]
    command += [f"{pages}/one", f"{pages}/two", "--runs", "2"]
    command += ["--categories", "performance", "--timeout", "90"]
    done = subprocess.run(
        command,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert done.returncode == 0, done.stderr + cluster.logs()
    document = json.loads(done.stdout)
    store = SqlJobStore(
        database.url().replace("postgresql://", "postgresql+psycopg://")
    )
    runs = list(store.iter_runs(document["job"]["id"]))
    reports = S3ReportStore.from_url(f"s3://{bucket}/lh")
    lhr = json.loads(reports.read_json(runs[0].report_json or ""))
    assert [url["valid_runs"] for url in document["urls"]] == [2, 2]
    assert lhr["lighthouseVersion"] == "13.5.0"
    assert reports.has_summary(document["job"]["id"])
    assert Counter(AUDITING.findall(cluster.logs())) == {run.id: 1 for run in runs}
    assert cluster.logs().count(COMPLETING) == 1
    assert all(worker.process.poll() is None for worker in workers)
