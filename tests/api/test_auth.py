"""Bearer tokens, the dashboard cookie, admin routes and job visibility."""

from __future__ import annotations

import httpx
import pytest

from lhfleet.api.auth import COOKIE
from lhfleet.api.tokens import hash_secret
from tests.api.conftest import Server, job_body

pytestmark = pytest.mark.anyio


async def test_no_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/jobs")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "no token" in response.json()["error"]


async def test_unknown_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/jobs", headers={"Authorization": "Bearer lhf_x"})
    assert response.status_code == 401
    assert "unknown or revoked" in response.json()["error"]


async def test_basic_scheme_is_401(client: httpx.AsyncClient, server: Server) -> None:
    headers = {"Authorization": f"Basic {server.user}"}
    response = await client.get("/api/jobs", headers=headers)
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/jobs"),
        ("GET", "/api/jobs/J"),
        ("GET", "/api/jobs/J/results"),
        ("GET", "/api/jobs/J/hooks"),
        ("POST", "/api/jobs/J/hooks/redeliver"),
        ("GET", "/api/jobs/J/runs/J-0-0/report.html"),
        ("GET", "/api/jobs/J/runs/J-0-0/report.json"),
        ("POST", "/api/jobs/J/cancel"),
        ("POST", "/api/jobs/J/retry"),
        ("GET", "/api/jobs/J/events"),
        ("GET", "/api/compare?a=J&b=J"),
        ("GET", "/api/me"),
        ("GET", "/api/tokens"),
    ],
)
async def test_every_api_route_needs_token(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert response.status_code == 401


async def test_health_needs_no_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_openapi_schema_served(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "/api/jobs" in schema["paths"]
    assert "/api/jobs/{job_id}/events" in schema["paths"]


async def test_other_tokens_job_is_404(
    client: httpx.AsyncClient, server: Server
) -> None:
    created = await client.post(
        "/api/jobs", json=job_body(), headers=server.headers(server.user)
    )
    job_id = created.json()["id"]
    for path in ("", "/results", "/hooks", "/events"):
        response = await client.get(
            f"/api/jobs/{job_id}{path}", headers=server.headers(server.other)
        )
        assert response.status_code == 404, path


async def test_admin_sees_every_job(client: httpx.AsyncClient, server: Server) -> None:
    created = await client.post(
        "/api/jobs", json=job_body(), headers=server.headers(server.user)
    )
    job_id = created.json()["id"]
    listed = await client.get("/api/jobs", headers=server.headers(server.admin))
    single = await client.get(
        f"/api/jobs/{job_id}", headers=server.headers(server.admin)
    )
    assert [job["id"] for job in listed.json()["jobs"]] == [job_id]
    assert single.status_code == 200


async def test_job_list_only_own(client: httpx.AsyncClient, server: Server) -> None:
    await client.post("/api/jobs", json=job_body(), headers=server.headers(server.user))
    listed = await client.get("/api/jobs", headers=server.headers(server.other))
    assert listed.json()["jobs"] == []


async def test_revoked_token_is_401(client: httpx.AsyncClient, server: Server) -> None:
    before = await client.get("/api/me", headers=server.headers(server.user))
    revoked = await client.post(
        "/api/tokens/user/revoke", headers=server.headers(server.admin)
    )
    after = await client.get("/api/me", headers=server.headers(server.user))
    assert before.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert after.status_code == 401


async def test_token_routes_need_admin(
    client: httpx.AsyncClient, server: Server
) -> None:
    response = await client.get("/api/tokens", headers=server.headers(server.user))
    assert response.status_code == 403
    assert "not an admin token" in response.json()["error"]


async def test_admin_creates_token(client: httpx.AsyncClient, server: Server) -> None:
    created = await client.post(
        "/api/tokens",
        json={"name": "ci", "quota": {"max_running_jobs": 2}},
        headers=server.headers(server.admin),
    )
    secret = created.json()["secret"]
    me = await client.get("/api/me", headers=server.headers(secret))
    assert created.status_code == 201
    assert me.json()["name"] == "ci"
    assert me.json()["quota"]["max_running_jobs"] == 2


async def test_token_secret_stored_hashed(server: Server) -> None:
    token = server.state.tokens.get_token("user")
    found = server.state.tokens.find_by_hash(hash_secret(server.user))
    assert found == token
    assert server.state.tokens.find_by_hash(server.user) is None


async def test_duplicate_token_name_is_422(
    client: httpx.AsyncClient, server: Server
) -> None:
    response = await client.post(
        "/api/tokens", json={"name": "user"}, headers=server.headers(server.admin)
    )
    assert response.status_code == 422
    assert "exists already" in response.json()["error"]


async def test_cookie_reads_without_header(
    client: httpx.AsyncClient, server: Server
) -> None:
    client.cookies.set(COOKIE, server.user)
    response = await client.get("/api/me")
    assert response.status_code == 200


async def test_cookie_change_needs_csrf_header(
    client: httpx.AsyncClient, server: Server
) -> None:
    client.cookies.set(COOKIE, server.user)
    refused = await client.post("/api/jobs", json=job_body())
    accepted = await client.post(
        "/api/jobs", json=job_body(), headers={"X-Requested-With": "lhfleet"}
    )
    assert refused.status_code == 401
    assert accepted.status_code == 201


async def test_login_sets_strict_cookie(
    client: httpx.AsyncClient, server: Server
) -> None:
    response = await client.post(
        "/login",
        content=f"token={server.user}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    cookie = response.headers["set-cookie"]
    assert response.status_code == 303
    assert "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()


async def test_login_with_bad_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/login",
        content="token=lhf_nope",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 401
    assert "unknown or revoked" in response.text


async def test_dashboard_redirects_to_login(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_token_never_logged(
    client: httpx.AsyncClient, server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    await client.post("/api/jobs", json=job_body(), headers=server.headers(server.user))
    await client.post(
        "/api/tokens", json={"name": "new"}, headers=server.headers(server.admin)
    )
    await client.get("/api/me", headers={"Authorization": "Bearer lhf_wrong"})
    assert server.user not in caplog.text
    assert server.admin not in caplog.text
    assert "lhf_" not in caplog.text
