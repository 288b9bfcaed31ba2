"""Fixtures of the server tests: a workspace on SQLite, the app, tokens, receivers.

The app runs in-process over httpx's ASGI transport, without its job
runner, so route tests never start Lighthouse. Tests that need progress
settle runs through the real job store instead.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from lhfleet import service
from lhfleet.api.app import create_app
from lhfleet.api.settings import ServerSettings
from lhfleet.api.state import ServerState, build_state
from lhfleet.api.tokens import issue_token
from lhfleet.lhr import ReportFacts
from lhfleet.models import Run
from lhfleet.ports import Failure, Quota
from lhfleet.store.sql import SqlJobStore, sqlite_url

OWNER = "test-settler"
FACTS = ReportFacts(
    error_code=None,
    error_message=None,
    scores={"performance": 0.9},
    metrics={"fcp": 800.0, "lcp": 1200.0, "tbt": 10.0, "cls": 0.0, "tti": 900.0},
    lighthouse_version="13.5.0",
)
REPORT_HTML = "<!doctype html><title>Lighthouse Report</title><p>report</p>"


@dataclass
class Server:
    """The app's state, and one secret per token: user, other and admin."""

    state: ServerState
    user: str
    other: str
    admin: str

    @property
    def workspace(self) -> service.Workspace:
        return self.state.workspace

    def headers(self, secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    def settle(self, job_id: str, failed: bool = False) -> Run | None:
        """Settle the job's next queued run as a real worker would, or return None."""
        store = self.workspace.store
        run = store.claim_next(job_id, OWNER, 60.0, time.time())
        if run is None:
            return None
        if failed:
            failure = Failure(code="NO_FCP", message="The page did not paint.")
            store.record_failure(run.id, OWNER, failure, time.time())
        else:
            refs = self.workspace.reports.put_report(
                job_id,
                run.id,
                run.attempts,
                json.dumps({"lhr": 1}).encode(),
                REPORT_HTML,
            )
            store.record_success(run.id, OWNER, FACTS, refs[0], refs[1], time.time())
        return store.get_run(run.id)

    def settle_all(self, job_id: str, failed: bool = False) -> None:
        while self.settle(job_id, failed) is not None:
            pass
        if self.workspace.store.get_job(job_id).state.value == "completed":
            service.complete(self.workspace, job_id)


def make_server(data_dir: Path, settings: ServerSettings | None = None) -> Server:
    workspace = service.Workspace.open(data_dir)
    state = build_state(workspace, settings or ServerSettings())
    _, user = issue_token(state.tokens, "user", quota=Quota())
    _, other = issue_token(state.tokens, "other")
    _, admin = issue_token(state.tokens, "admin", admin=True)
    return Server(state, user, other, admin)


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return make_server(tmp_path / "data")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(server.state, start_runner=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def job_body(urls: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Return a valid POST /api/jobs body, with fields replaced from ``extra``."""
    body: dict[str, Any] = {
        "urls": ["http://127.0.0.1:9/page"] if urls is None else urls,
        "runs": 2,
        "settings": {"categories": ["performance"]},
    }
    body.update(extra)
    return body


@dataclass
class Delivery:
    """One request the webhook receiver got."""

    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 that responds with the statuses it is given.

    The first requests get ``statuses`` in order; later ones get 200.
    """

    statuses: list[int] = field(default_factory=list)
    received: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.05)
        with self.lock:
            return list(self.received)

    def _answer(self, delivery: Delivery) -> int:
        with self.lock:
            self.received.append(delivery)
            return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiving = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            delivery = Delivery(dict(self.headers.items()), self.rfile.read(length))
            status = receiving._answer(delivery)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    receiving.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiving.server.daemon_threads = True
    thread = threading.Thread(
        target=receiving.server.serve_forever, args=(0.05,), daemon=True
    )
    thread.start()
    yield receiving
    receiving.server.shutdown()
    receiving.server.server_close()


PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


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
    """A job store on SQLite, then on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        store = SqlJobStore(sqlite_url(tmp_path / "jobs.db"))
        yield store
        store.close()
        return
    if not _postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    name = f"lhfleet_api_{tmp_path.name.lower().replace('-', '_')}"[:60]
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


@dataclass
class LiveServer:
    """The app served by uvicorn on a free loopback port, in a thread."""

    server: Server
    url: str


def serve_in_thread(
    server: Server, start_runner: bool = False
) -> Generator[LiveServer]:
    """Serve the app until the generator is closed; yield where it listens."""
    app = create_app(server.state, start_runner=start_runner)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not running.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = running.servers[0].sockets[0].getsockname()[1]
    yield LiveServer(server, f"http://127.0.0.1:{port}")
    running.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
def live(server: Server) -> Iterator[LiveServer]:
    yield from serve_in_thread(server)
