"""Schemathesis over the OpenAPI schema of lhfleet serve, against a real server.

The app runs under uvicorn on 127.0.0.1 with a real SQLite store, and
without its job runner, so a submitted job is stored but never audited.
The server accepts no hook types, so no fuzzed webhook is stored, and a
job that the fuzzer cancels into completion has no hook to fire.

Each example calls one operation with one of four credentials (an admin
token, a user token, an unknown token, none). Now and then a seeded job,
run or token replaces the generated path and query values, so that the
handlers behind a successful lookup are fuzzed too. Every response must
be below 500 and match the schema: its status code, content type, headers
and body.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from lhfleet.api.settings import ServerSettings
from lhfleet.api.tokens import issue_token
from tests.api.conftest import LiveServer, job_body, make_server, serve_in_thread

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 150
"""Examples per operation and mode. The test took 24 s with 18 operations on
this project's two-core machine at a load average of 3.5 (pytest
--durations); operations with few distinct requests stop earlier."""

REQUEST_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
"""Seconds between the event streams' reads of the store. A stream's first
event waits for the next read, so the default half second would make the
event stream's examples take most of the test's time."""

Operation = APIOperation[Any, Any, Any, Any]

pytestmark = pytest.mark.fuzz


@dataclass(frozen=True)
class Seeded:
    """The live server and the ids of what it stores before fuzzing starts."""

    live: LiveServer
    admin: str
    """Secret of an admin token whose name no generated value repeats."""

    running_job: str
    completed_job: str
    failed_job: str
    report_run: str
    token_name: str

    @property
    def credentials(self) -> list[str | None]:
        server = self.live.server
        return [self.admin, server.user, "lhf_unknown", None]


def submit_job(live: LiveServer, urls: list[str]) -> str:
    """Submit a job as the user token, through the route a client uses."""
    server = live.server
    response = httpx.post(
        f"{live.url}/api/jobs",
        json=job_body(urls),
        headers=server.headers(server.user),
        timeout=REQUEST_TIMEOUT,
    )
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    settings = ServerSettings(hook_types=(), progress_interval=POLL_INTERVAL)
    server = make_server(data_dir, settings)
    _, admin = issue_token(
        server.state.tokens, f"fuzz-admin-{secrets.token_hex(8)}", admin=True
    )
    serving = serve_in_thread(server)
    live = next(serving)
    running = submit_job(live, ["http://127.0.0.1:9/running"])
    completed = submit_job(live, ["http://127.0.0.1:9/completed"])
    failed = submit_job(live, ["http://127.0.0.1:9/failed"])
    server.settle_all(completed)
    server.settle_all(failed, failed=True)
    report_run = next(server.workspace.store.iter_runs(completed)).id
    yield Seeded(live, admin, running, completed, failed, report_run, "other")
    serving.close()


def use_seeded_values(
    case: schemathesis.Case[Any], data: st.DataObject, seeded: Seeded
) -> None:
    """Replace some generated ids by stored ones, drawn by Hypothesis.

    The event stream stays open until its job completes, so only the job
    whose runs all succeeded replaces its id: the fuzzer cannot cancel or
    retry that job, so it stays completed. The others may be running.
    """
    jobs = [seeded.completed_job]
    if not case.path.endswith("/events"):
        jobs += [seeded.failed_job, seeded.running_job]
    path = case.path_parameters if case.path_parameters is not None else {}
    query = case.query if case.query is not None else {}
    if "job_id" in path and data.draw(st.booleans(), label="stored job"):
        path["job_id"] = data.draw(st.sampled_from(jobs), label="job_id")
    if "run_id" in path and data.draw(st.booleans(), label="stored run"):
        path["job_id"] = seeded.completed_job
        path["run_id"] = seeded.report_run
    if "name" in path and data.draw(st.booleans(), label="stored token"):
        path["name"] = seeded.token_name
    for key in ("a", "b"):
        if key in query and data.draw(st.booleans(), label=f"stored job {key}"):
            query[key] = data.draw(st.sampled_from(jobs), label=key)


def modes(operation: Operation) -> list[GenerationMode]:
    """Return the generation modes that can make requests for an operation.

    Invalid requests need a body or a query parameter with a type or bounds
    to break: any string is a valid path parameter here.
    """
    if operation.body or operation.query:
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def fuzz_operation(operation: Operation, mode: GenerationMode, seeded: Seeded) -> None:
    """Call one operation with EXAMPLES generated requests; raise on a failed check."""

    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def call(case: schemathesis.Case[Any], data: st.DataObject) -> None:
        use_seeded_values(case, data, seeded)
        secret = data.draw(st.sampled_from(seeded.credentials), label="token")
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        case.call_and_validate(headers=headers, checks=CHECKS, timeout=REQUEST_TIMEOUT)

    call()


def test_api_conforms_to_schema(seeded: Seeded, subtests: pytest.Subtests) -> None:
    schema = schemathesis.openapi.from_url(f"{seeded.live.url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            raise result.err()
        operations.append(result.ok())
    assert len(operations) >= 18
    for operation in operations:
        for mode in modes(operation):
            with subtests.test(operation=operation.label, mode=mode.value):
                fuzz_operation(operation, mode, seeded)
