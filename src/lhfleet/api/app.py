"""The FastAPI application: routes, error responses, the body limit and start-up.

Every lhfleet error becomes a JSON response ``{"error": message, ...}`` with
its HTTP status: 401 no or bad token, 403 not an admin token, 404 unknown
(or another token's) job, 409 a change the job's state does not allow,
413 body too large, 422 invalid field (named in ``field``), 429 over a
quota (with ``limit`` and ``resets_at``), 503 store or browser failure.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lhfleet import __version__
from lhfleet.api import admin, dashboard, jobs
from lhfleet.api.state import ServerState
from lhfleet.errors import (
    AuthenticationError,
    EnvironmentProblem,
    InputTooLargeError,
    InvalidFieldError,
    JobNotFinished,
    JobStateConflict,
    LhfleetError,
    NotFoundError,
    PermissionDenied,
    QuotaExceeded,
    StoreError,
    UsageError,
)

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
STATUSES: tuple[tuple[type[LhfleetError], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDenied, 403),
    (NotFoundError, 404),
    (JobStateConflict, 409),
    (JobNotFinished, 409),
    (InputTooLargeError, 413),
    (QuotaExceeded, 429),
    (UsageError, 422),
    (StoreError, 503),
    (EnvironmentProblem, 503),
)


def create_app(state: ServerState, start_runner: bool = True) -> FastAPI:
    """Return the app; on start-up it resumes the server's unfinished jobs.

    With ``start_runner`` False no job is driven, for tests of the routes.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_runner:
            state.runner.start()
            await run_in_threadpool(state.runner.resume_all, state.tokens)
        logger.info("lhfleet server started (data in %s)", state.workspace.data_dir)
        yield
        await state.hub.close()
        if start_runner:
            await run_in_threadpool(state.runner.stop)
        await run_in_threadpool(state.close)
        logger.info("lhfleet server stopped")

    app = FastAPI(
        title="lhfleet",
        version=__version__,
        description="Run Lighthouse over many URLs, watch jobs, fire hooks.",
        lifespan=lifespan,
        # The interactive docs load their scripts from a CDN; the schema is
        # served at /openapi.json instead.
        docs_url=None,
        redoc_url=None,
    )
    app.state.lhfleet = state
    app.add_middleware(BodyLimit, max_bytes=state.settings.max_body_bytes)
    app.add_exception_handler(LhfleetError, _lhfleet_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(jobs.router)
    app.include_router(admin.router)
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_api_route("/healthz", _health, methods=["GET"], tags=["health"])
    return app


async def _health(request: Request) -> dict[str, Any]:
    """Return ok and the runner's load; needs no token."""
    state: ServerState = request.app.state.lhfleet
    return {
        "status": "ok",
        "version": __version__,
        "jobs_active": state.runner.active(),
        "event_listeners": state.hub.listeners,
    }


def status_of(error: LhfleetError) -> int:
    """Return the HTTP status for an lhfleet error."""
    for kind, status in STATUSES:
        if isinstance(error, kind):
            return status
    return 500


async def _lhfleet_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, LhfleetError)
    status = status_of(error)
    body: dict[str, Any] = {"error": str(error)}
    headers: dict[str, str] = {}
    if isinstance(error, InvalidFieldError):
        body["field"] = error.field
    if isinstance(error, AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, QuotaExceeded):
        body |= _quota_fields(error, headers)
    if status >= 500:
        logger.error("request failed with %d: %s", status, error)
    return JSONResponse(body, status_code=status, headers=headers)


def _quota_fields(error: QuotaExceeded, headers: dict[str, str]) -> dict[str, Any]:
    resets = None
    if error.resets_at is not None:
        resets = datetime.fromtimestamp(error.resets_at, UTC).isoformat()
        wait = max(1, int(error.resets_at - datetime.now(UTC).timestamp()))
        headers["Retry-After"] = str(wait)
    return {"quota": error.quota, "limit": error.limit, "resets_at": resets}


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    """Respond to an error that FastAPI or Starlette raised, in lhfleet's format."""
    assert isinstance(error, StarletteHTTPException)
    headers = dict(error.headers or {})
    method, path = request.method, request.url.path
    if error.status_code == 404:
        message = f"No route {path}. The API's routes are listed in /openapi.json."
    elif error.status_code == 405:
        allowed = _allowed_methods(request) or headers.get("Allow", "").split(", ")
        headers["Allow"] = ", ".join(allowed)
        message = f"{path} does not take {method}; send {' or '.join(allowed)}."
    elif error.status_code == 400:
        message = (
            f"The request body could not be read ({error.detail}). "
            "Send a JSON object in UTF-8."
        )
    else:
        message = str(error.detail)
    return JSONResponse({"error": message}, error.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Return the methods that the OpenAPI schema lists for the request's path.

    Starlette's own 405 names only the methods of the first route that
    matches the path, and lhfleet registers each method as its own route.
    """
    methods: set[str] = set()
    for template, item in request.app.openapi()["paths"].items():
        if _path_pattern(template).fullmatch(request.url.path):
            methods.update(method.upper() for method in item if method in HTTP_METHODS)
    return sorted(methods)


def _path_pattern(template: str) -> re.Pattern[str]:
    """Return a pattern for an OpenAPI path such as ``/api/jobs/{job_id}``."""
    parts = re.split(r"(\{[^}/]+\})", template)
    return re.compile(
        "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    )


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [_problem(item) for item in error.errors()]
    first = problems[0] if problems else {"field": "body", "message": "invalid"}
    return JSONResponse(
        {
            "error": f"{first['field']}: {first['message']}",
            "field": first["field"],
            "problems": problems,
        },
        status_code=422,
    )


def _problem(item: dict[str, Any]) -> dict[str, str]:
    """Return one schema error as a field and a message."""
    if item.get("type") == "json_invalid":
        reason = (item.get("ctx") or {}).get("error", "invalid JSON")
        position = item["loc"][-1] if item.get("loc") else "?"
        return {
            "field": "body",
            "message": f"the body is not valid JSON ({reason} at position "
            f"{position}); send a JSON object",
        }
    return {"field": _field(item["loc"]), "message": item["msg"]}


def _field(location: Any) -> str:
    """Return a field path such as ``settings.timeout`` or ``urls[0]``."""
    parts = [part for part in location if part not in ("body", "query", "path")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "body"


class BodyLimit:
    """Respond 413 to a request body over ``max_bytes``, before any handler reads it.

    A declared Content-Length over the limit is rejected unread. A chunked
    body is read up to the limit and then rejected.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if (
            declared is not None
            and declared.isdigit()
            and int(declared) > self.max_bytes
        ):
            await self._reject(send, int(declared))
            return
        messages, size = await self._read(receive)
        if size > self.max_bytes:
            await self._reject(send, size)
            return
        await self.app(scope, _replay(messages, receive), send)

    async def _read(self, receive: Receive) -> tuple[list[Message], int]:
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.max_bytes or not message.get("more_body"):
                return messages, size

    async def _reject(self, send: Send, size: int) -> None:
        body = json.dumps(
            {
                "error": f"The request body is {size} bytes or more; this server "
                f"takes at most {self.max_bytes}. Send fewer URLs per job.",
                "limit": self.max_bytes,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    queue = list(messages)

    async def replayed() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replayed
