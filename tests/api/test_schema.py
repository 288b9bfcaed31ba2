"""Bugs that the API fuzz test found: server errors, and responses off the schema.

Each test pins one fix: values too large for the store, errors that
FastAPI formats on its own, and statuses or media types that the OpenAPI
schema did not document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from lhfleet.cli import main
from tests.api.conftest import Server

pytestmark = pytest.mark.anyio

TOO_LARGE = 2**63
"""One more than SQLite's and PostgreSQL's largest integer."""

ERROR_REF = "#/components/schemas/ErrorOut"


async def openapi(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    schema: dict[str, Any] = response.json()
    return schema


def error_schema(operation: dict[str, Any], status: int) -> str | None:
    """Return the schema reference of an error response, or None if undocumented."""
    response = operation["responses"].get(str(status))
    if response is None:
        return None
    reference: str = response["content"]["application/json"]["schema"]["$ref"]
    return reference


async def test_huge_offset_is_422(client: httpx.AsyncClient, server: Server) -> None:
    response = await client.get(
        f"/api/jobs?offset={TOO_LARGE}", headers=server.headers(server.admin)
    )
    assert response.status_code == 422
    assert response.json()["field"] == "offset"


async def test_huge_quota_is_422(client: httpx.AsyncClient, server: Server) -> None:
    response = await client.put(
        "/api/tokens/user/quota",
        json={"max_runs_per_day": TOO_LARGE},
        headers=server.headers(server.admin),
    )
    assert response.status_code == 422
    assert response.json()["field"] == "max_runs_per_day"


async def test_huge_quota_on_create_is_422(
    client: httpx.AsyncClient, server: Server
) -> None:
    response = await client.post(
        "/api/tokens",
        json={"name": "ci", "quota": {"max_running_jobs": TOO_LARGE}},
        headers=server.headers(server.admin),
    )
    assert response.status_code == 422
    assert response.json()["field"] == "quota.max_running_jobs"


def test_cli_huge_quota_exits_2(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path)]
    CliRunner().invoke(main, ["token", "create", "ci", *data])
    result = CliRunner().invoke(
        main, ["token", "quota", "ci", "--max-runs-per-day", str(TOO_LARGE), *data]
    )
    assert result.exit_code == 2, result.output
    assert "use a whole number from 1 to 1000000000" in " ".join(result.stderr.split())


async def test_undecodable_body_is_400(
    client: httpx.AsyncClient, server: Server
) -> None:
    headers = {**server.headers(server.admin), "Content-Type": "application/json"}
    response = await client.put(
        "/api/tokens/user/quota", content=b"\x80\x14", headers=headers
    )
    assert response.status_code == 400
    assert "Send a JSON object in UTF-8" in response.json()["error"]


async def test_invalid_json_names_body(
    client: httpx.AsyncClient, server: Server
) -> None:
    headers = {**server.headers(server.admin), "Content-Type": "application/json"}
    response = await client.put(
        "/api/tokens/user/quota", content=b"{bad", headers=headers
    )
    assert response.status_code == 422
    assert response.json()["field"] == "body"
    assert "not valid JSON" in response.json()["error"]


async def test_unknown_route_is_error_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    assert "/openapi.json" in response.json()["error"]


async def test_wrong_method_allows_every_method(
    client: httpx.AsyncClient, server: Server
) -> None:
    response = await client.delete("/api/jobs", headers=server.headers(server.user))
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, POST"
    assert "does not take DELETE" in response.json()["error"]


async def test_schema_documents_errors(client: httpx.AsyncClient) -> None:
    schema = await openapi(client)
    for path, item in schema["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, operation in item.items():
            for status in (401, 422, 503):
                assert error_schema(operation, status) == ERROR_REF, (
                    f"{method.upper()} {path} {status}"
                )


async def test_schema_documents_job_lookups(client: httpx.AsyncClient) -> None:
    schema = await openapi(client)
    for path, item in schema["paths"].items():
        if "{job_id}" not in path:
            continue
        for method, operation in item.items():
            assert error_schema(operation, 404) == ERROR_REF, f"{method} {path}"


async def test_schema_documents_event_stream(client: httpx.AsyncClient) -> None:
    schema = await openapi(client)
    operation = schema["paths"]["/api/jobs/{job_id}/events"]["get"]
    content = operation["responses"]["200"]["content"]
    assert list(content) == ["text/event-stream"]
    assert content["text/event-stream"]["schema"]["required"] == [
        "event",
        "id",
        "data",
    ]


async def test_schema_documents_html_report(client: httpx.AsyncClient) -> None:
    schema = await openapi(client)
    path = "/api/jobs/{job_id}/runs/{run_id}/report.html"
    content = schema["paths"][path]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/html"]
