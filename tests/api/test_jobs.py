"""The job routes: submit, validation, limits, list, read, results, reports, actions."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lhfleet import codes, service
from lhfleet.api.app import create_app
from lhfleet.api.settings import ServerSettings
from lhfleet.api.state import build_state
from lhfleet.guard import GuardPolicy
from lhfleet.guard_auditor import GuardedAuditor
from lhfleet.models import JobState
from lhfleet.runtime import Runtime
from tests.api.conftest import REPORT_HTML, Server, job_body, make_server

pytestmark = pytest.mark.anyio


async def submit(client: httpx.AsyncClient, server: Server, **extra: Any) -> str:
    response = await client.post(
        "/api/jobs", json=job_body(**extra), headers=server.headers(server.user)
    )
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


async def test_submit_answers_201(client: httpx.AsyncClient, server: Server) -> None:
    response = await client.post(
        "/api/jobs", json=job_body(), headers=server.headers(server.user)
    )
    job = response.json()
    assert response.status_code == 201
    assert response.headers["Location"] == f"/api/jobs/{job['id']}"
    assert job["counts"] == {"total": 2, "succeeded": 0, "failed": 0, "pending": 2}
    assert job["runner"] == {"state": "queued", "error": None}


async def test_submit_keeps_labels(client: httpx.AsyncClient, server: Server) -> None:
    target = {"url": "http://127.0.0.1:9/a", "label": "home", "meta": {"team": "web"}}
    job_id = await submit(client, server, urls=[target])
    run = next(server.workspace.store.iter_runs(job_id))
    assert run.label == "home"
    assert run.meta == {"team": "web"}


async def test_submit_keeps_headers_secret(
    client: httpx.AsyncClient, server: Server
) -> None:
    settings = {"categories": ["performance"], "extra_headers": {"X-Key": "s3cr3t"}}
    job_id = await submit(client, server, settings=settings)
    job = await client.get(f"/api/jobs/{job_id}", headers=server.headers(server.user))
    secrets = server.workspace.store.get_secrets(job_id)
    assert secrets.extra_headers == {"X-Key": "s3cr3t"}
    assert "s3cr3t" not in job.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"runs": 0}, "runs"),
        ({"runs": "many"}, "runs"),
        ({"urls": []}, "urls"),
        ({"colour": "red"}, "colour"),
        ({"settings": {"timeout": 1}}, "settings.timeout"),
        ({"settings": {"categories": ["speed"]}}, "settings.categories"),
        ({"settings": {"preset": "tablet"}}, "settings.preset"),
        ({"urls": ["ftp://example.com/"]}, "urls"),
        ({"urls": ["http://exa mple.com/"]}, "urls"),
        ({"runs": 21}, "runs"),
        ({"hooks": [{"type": "pager"}]}, "hooks[0]"),
        ({"hooks": [{"type": "webhook", "url": "mailto:a@b"}]}, "hooks[0]"),
        ({"hooks": [{"type": "webhook"}]}, "hooks[0]"),
    ],
)
async def test_invalid_field_is_422(
    client: httpx.AsyncClient, server: Server, change: dict[str, Any], field: str
) -> None:
    response = await client.post(
        "/api/jobs", json=job_body(**change), headers=server.headers(server.user)
    )
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert server.workspace.store.list_jobs() == []


async def test_invalid_url_names_item(
    client: httpx.AsyncClient, server: Server
) -> None:
    urls = ["http://127.0.0.1:9/a", "ftp://example.com/"]
    response = await client.post(
        "/api/jobs", json=job_body(urls=urls), headers=server.headers(server.user)
    )
    assert "urls item 2" in response.json()["error"]


async def test_skip_invalid_leaves_url_out(
    client: httpx.AsyncClient, server: Server
) -> None:
    urls = ["http://127.0.0.1:9/a", "ftp://example.com/"]
    job_id = await submit(client, server, urls=urls, skip_invalid=True)
    assert server.workspace.store.get_job(job_id).total == 2


async def test_too_many_urls_is_422(tmp_path: Path) -> None:
    server = make_server(tmp_path / "data", ServerSettings(max_urls=2))
    app = create_app(server.state, start_runner=False)
    transport = httpx.ASGITransport(app=app)
    urls = [f"http://127.0.0.1:9/{number}" for number in range(3)]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.post(
            "/api/jobs", json=job_body(urls=urls), headers=server.headers(server.user)
        )
    assert response.status_code == 422
    assert response.json()["field"] == "urls"
    assert "the limit is 2" in response.json()["error"]


async def test_large_body_is_413(client: httpx.AsyncClient, server: Server) -> None:
    urls = [f"http://127.0.0.1:9/{'x' * 1000}/{number}" for number in range(1100)]
    response = await client.post(
        "/api/jobs", json=job_body(urls=urls), headers=server.headers(server.user)
    )
    assert response.status_code == 413
    assert response.json()["limit"] == 1024 * 1024


async def test_chunked_large_body_is_413(
    client: httpx.AsyncClient, server: Server
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 100_000

    response = await client.post(
        "/api/jobs", content=chunks(), headers=server.headers(server.user)
    )
    assert response.status_code == 413


async def test_list_is_paginated(client: httpx.AsyncClient, server: Server) -> None:
    first = await submit(client, server)
    second = await submit(client, server)
    page = await client.get("/api/jobs?limit=1", headers=server.headers(server.user))
    following = await client.get(
        page.json()["next"], headers=server.headers(server.user)
    )
    assert [job["id"] for job in page.json()["jobs"]] == [second]
    assert [job["id"] for job in following.json()["jobs"]] == [first]


async def test_list_limit_over_200_is_422(
    client: httpx.AsyncClient, server: Server
) -> None:
    response = await client.get(
        "/api/jobs?limit=500", headers=server.headers(server.user)
    )
    assert response.status_code == 422
    assert response.json()["field"] == "limit"


async def test_unknown_job_is_404(client: httpx.AsyncClient, server: Server) -> None:
    response = await client.get("/api/jobs/nope", headers=server.headers(server.admin))
    assert response.status_code == 404


async def test_results_match_cli_schema(
    client: httpx.AsyncClient, server: Server
) -> None:
    job_id = await submit(client, server)
    server.settle_all(job_id)
    response = await client.get(
        f"/api/jobs/{job_id}/results", headers=server.headers(server.user)
    )
    assert response.json() == service.results(server.workspace, job_id)
    assert response.json()["urls"][0]["valid_runs"] == 2


async def test_report_routes_serve_files(
    client: httpx.AsyncClient, server: Server
) -> None:
    job_id = await submit(client, server)
    run = server.settle(job_id)
    assert run is not None
    base = f"/api/jobs/{job_id}/runs/{run.id}"
    html = await client.get(f"{base}/report.html", headers=server.headers(server.user))
    body = await client.get(f"{base}/report.json", headers=server.headers(server.user))
    assert html.text == REPORT_HTML
    assert html.headers["content-security-policy"].startswith("sandbox")
    assert body.json() == {"lhr": 1}


async def test_report_of_other_job_is_404(
    client: httpx.AsyncClient, server: Server
) -> None:
    first = await submit(client, server)
    second = await submit(client, server)
    run = server.settle(first)
    assert run is not None
    response = await client.get(
        f"/api/jobs/{second}/runs/{run.id}/report.html",
        headers=server.headers(server.user),
    )
    assert response.status_code == 404


async def test_report_of_queued_run_is_404(
    client: httpx.AsyncClient, server: Server
) -> None:
    job_id = await submit(client, server)
    response = await client.get(
        f"/api/jobs/{job_id}/runs/{job_id}-0-0/report.json",
        headers=server.headers(server.user),
    )
    assert response.status_code == 404
    assert "no report" in response.json()["error"]


def wait_for_state(server: Server, job_id: str, state: JobState) -> None:
    deadline = time.monotonic() + 10
    while server.workspace.store.get_job(job_id).state is not state:
        assert time.monotonic() < deadline, "job did not reach " + state.value
        time.sleep(0.05)


async def test_cancel_fails_unsettled_runs(
    client: httpx.AsyncClient, server: Server
) -> None:
    job_id = await submit(client, server)
    server.settle(job_id)
    response = await client.post(
        f"/api/jobs/{job_id}/cancel", headers=server.headers(server.user)
    )
    wait_for_state(server, job_id, JobState.COMPLETED)
    runs = list(server.workspace.store.iter_runs(job_id))
    assert response.status_code == 202
    assert response.json()["cancelling"] == 1
    assert [run.error_code for run in runs] == [None, codes.JOB_CANCELLED]


async def test_cancel_completed_job_is_409(
    client: httpx.AsyncClient, server: Server
) -> None:
    job_id = await submit(client, server)
    server.settle_all(job_id)
    response = await client.post(
        f"/api/jobs/{job_id}/cancel", headers=server.headers(server.user)
    )
    assert response.status_code == 409


async def test_retry_queues_failed_runs(
    client: httpx.AsyncClient, server: Server
) -> None:
    job_id = await submit(client, server)
    server.settle_all(job_id, failed=True)
    response = await client.post(
        f"/api/jobs/{job_id}/retry", headers=server.headers(server.user)
    )
    job = server.workspace.store.get_job(job_id)
    assert response.status_code == 202
    assert response.json()["queued"] == 2
    assert job.state is JobState.RUNNING
    assert server.state.runner.state_of(job_id) is not None


async def test_retry_without_failures_is_409(
    client: httpx.AsyncClient, server: Server
) -> None:
    job_id = await submit(client, server)
    response = await client.post(
        f"/api/jobs/{job_id}/retry", headers=server.headers(server.user)
    )
    assert response.status_code == 409


async def test_compare_two_jobs(client: httpx.AsyncClient, server: Server) -> None:
    first = await submit(client, server)
    second = await submit(client, server)
    server.settle_all(first)
    server.settle_all(second)
    response = await client.get(
        f"/api/compare?a={first}&b={second}", headers=server.headers(server.user)
    )
    assert response.status_code == 200
    assert response.json()["urls"][0]["url"] == "http://127.0.0.1:9/page"


async def test_compare_other_tokens_job_is_404(
    client: httpx.AsyncClient, server: Server
) -> None:
    first = await submit(client, server)
    response = await client.get(
        f"/api/compare?a={first}&b={first}", headers=server.headers(server.other)
    )
    assert response.status_code == 404


async def test_dashboard_pages_render(
    client: httpx.AsyncClient, server: Server
) -> None:
    job_id = await submit(client, server)
    server.settle(job_id)
    server.settle(job_id, failed=True)
    client.cookies.set("lhfleet_token", server.user)
    listing = await client.get("/")
    page = await client.get(f"/jobs/{job_id}")
    compare = await client.get(f"/compare?a={job_id}&b={job_id}")
    assert job_id in listing.text
    assert "NO_FCP" in page.text
    assert f"/api/jobs/{job_id}/runs/{job_id}-0-0/report.html" in page.text
    assert '<svg class="chart"' in page.text
    assert compare.status_code == 200


async def test_dashboard_loads_only_local_assets(
    client: httpx.AsyncClient, server: Server
) -> None:
    client.cookies.set("lhfleet_token", server.user)
    page = (await client.get("/")).text
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links
    assert [link for link in links if not link.startswith("/")] == []


async def test_guarded_server_records_guard(tmp_path: Path) -> None:
    settings = ServerSettings(allowed_networks=("127.0.0.1",))
    server = make_server(tmp_path / "data", settings)
    transport = httpx.ASGITransport(app=create_app(server.state, start_runner=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        job_id = await submit(client, server)
    stored = server.workspace.store.get_job(job_id).settings
    assert stored.guard is True
    assert stored.allowed_networks == ("127.0.0.1/32",)
    assert stored.chrome_flags == ()


async def test_unguarded_server_records_no_guard(
    client: httpx.AsyncClient, server: Server
) -> None:
    job_id = await submit(client, server)
    stored = server.workspace.store.get_job(job_id).settings
    assert stored.guard is False
    assert stored.allowed_networks == ()


def test_server_auditor_has_server_policy(tmp_path: Path) -> None:
    workspace = service.Workspace.open(tmp_path / "data")
    runtime = Runtime(*(tmp_path / name for name in ("node", "cli.js", "gen.js", "c")))
    settings = ServerSettings(allowed_networks=("10.0.0.0/8",))
    state = build_state(workspace, settings, runtime)
    auditor = state.runner.make_auditor()
    state.close()
    assert isinstance(auditor, GuardedAuditor)
    assert auditor.policy == GuardPolicy.from_cidrs(["10.0.0.0/8"])
