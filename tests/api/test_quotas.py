"""Per-token quotas, and which hooks a token may give."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from lhfleet.api.app import create_app
from lhfleet.api.settings import ServerSettings
from lhfleet.errors import QuotaExceeded
from lhfleet.ports import Quota
from lhfleet.store.tokens import next_day_start
from tests.api.conftest import Server, job_body, make_server

pytestmark = pytest.mark.anyio


def set_quota(server: Server, quota: Quota) -> None:
    server.state.tokens.set_quota("user", quota)
    server.state.cache.forget(server.state.tokens.get_token("user").id)


async def post(
    client: httpx.AsyncClient, server: Server, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/api/jobs", json=job_body(**extra), headers=server.headers(server.user)
    )


async def test_running_quota_is_429(client: httpx.AsyncClient, server: Server) -> None:
    set_quota(server, Quota(max_running_jobs=1))
    first = await post(client, server)
    second = await post(client, server)
    body = second.json()
    assert first.status_code == 201
    assert second.status_code == 429
    assert body["quota"] == "max_running_jobs"
    assert body["limit"] == 1
    assert body["resets_at"] is None
    assert "Retry-After" not in second.headers


async def test_running_quota_frees_on_completion(
    client: httpx.AsyncClient, server: Server
) -> None:
    set_quota(server, Quota(max_running_jobs=1))
    first = await post(client, server)
    server.settle_all(first.json()["id"])
    second = await post(client, server)
    assert second.status_code == 201


async def test_daily_runs_quota_is_429(
    client: httpx.AsyncClient, server: Server
) -> None:
    set_quota(server, Quota(max_runs_per_day=3))
    first = await post(client, server)
    second = await post(client, server)
    body = second.json()
    resets = datetime.fromisoformat(body["resets_at"]).timestamp()
    assert first.status_code == 201
    assert second.status_code == 429
    assert body["quota"] == "max_runs_per_day"
    assert body["limit"] == 3
    assert resets == next_day_start(time.time())
    assert 0 < int(second.headers["Retry-After"]) <= 86400


async def test_quota_is_per_token(client: httpx.AsyncClient, server: Server) -> None:
    set_quota(server, Quota(max_running_jobs=1))
    await post(client, server)
    other = await client.post(
        "/api/jobs", json=job_body(), headers=server.headers(server.other)
    )
    assert other.status_code == 201


async def test_rejected_job_uses_no_quota(
    client: httpx.AsyncClient, server: Server
) -> None:
    set_quota(server, Quota(max_running_jobs=1))
    bad = await post(client, server, urls=["ftp://example.com/"])
    good = await post(client, server)
    assert bad.status_code == 422
    assert good.status_code == 201


async def test_admin_sets_quota(client: httpx.AsyncClient, server: Server) -> None:
    response = await client.put(
        "/api/tokens/user/quota",
        json={"max_running_jobs": 1, "max_runs_per_day": None},
        headers=server.headers(server.admin),
    )
    first = await post(client, server)
    second = await post(client, server)
    assert response.json()["quota"] == {"max_running_jobs": 1, "max_runs_per_day": None}
    assert first.status_code == 201
    assert second.status_code == 429


def test_reservations_race_for_last_place(server: Server) -> None:
    set_quota(server, Quota(max_running_jobs=3))
    token = server.state.tokens.get_token("user")
    outcomes: list[str] = []
    lock = threading.Lock()

    def reserve() -> None:
        try:
            server.state.tokens.reserve(token, 1, time.time())
            result = "reserved"
        except QuotaExceeded:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=reserve) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 5 + ["reserved"] * 3


async def test_command_hook_needs_admin(
    tmp_path: Path,
) -> None:
    settings = ServerSettings(hook_types=("webhook", "command"))
    server = make_server(tmp_path / "data", settings)
    hooks = [{"type": "command", "run": "true"}]
    transport = httpx.ASGITransport(app=create_app(server.state, start_runner=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        user = await client.post(
            "/api/jobs", json=job_body(hooks=hooks), headers=server.headers(server.user)
        )
        admin = await client.post(
            "/api/jobs",
            json=job_body(hooks=hooks),
            headers=server.headers(server.admin),
        )
    assert user.status_code == 403
    assert admin.status_code == 201


async def test_disallowed_hook_type_is_422(
    client: httpx.AsyncClient, server: Server
) -> None:
    hooks = [{"type": "python", "target": "json:dumps"}]
    response = await client.post(
        "/api/jobs", json=job_body(hooks=hooks), headers=server.headers(server.admin)
    )
    assert response.status_code == 422
    assert response.json()["field"] == "hooks[0]"
    assert "--allow-hooks" in response.json()["error"]


async def test_guard_rejects_loopback_webhook(tmp_path: Path) -> None:
    server = make_server(tmp_path / "data", ServerSettings(guard=True))
    hooks = [{"type": "webhook", "url": "http://127.0.0.1:9/hook"}]
    urls = ["https://203.0.113.7/"]
    transport = httpx.ASGITransport(app=create_app(server.state, start_runner=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        hook = await client.post(
            "/api/jobs",
            json=job_body(urls=urls, hooks=hooks),
            headers=server.headers(server.user),
        )
        target = await client.post(
            "/api/jobs", json=job_body(), headers=server.headers(server.user)
        )
    assert hook.status_code == 422
    assert hook.json()["field"] == "hooks[0].url"
    assert target.status_code == 422
    assert target.json()["field"] == "urls"
