"""The dashboard: server-rendered pages over the same state as the API.

The login page takes a token and keeps it in an HttpOnly cookie. Every
other page needs that cookie, and redirects to the login page without it.
The pages' JavaScript calls the ``/api`` routes with the cookie, and
follows a job's progress through its event stream.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from lhfleet import __version__, service
from lhfleet.api.auth import COOKIE, CSRF_VALUE, State
from lhfleet.api.charts import metric_chart, score_chart
from lhfleet.api.jobs import hook_deliveries
from lhfleet.compare import CompareOptions, compare_jobs, format_change
from lhfleet.errors import LhfleetError, NotFoundError
from lhfleet.models import Job
from lhfleet.ports import ApiToken
from lhfleet.summary import format_value

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals.update(
    version=__version__,
    csrf=CSRF_VALUE,
    score_chart=score_chart,
    metric_chart=metric_chart,
    format_value=format_value,
    format_change=format_change,
)
PAGE_SIZE = 25
COOKIE_SECONDS = 7 * 86400


def _signed_in(request: Request, state: State) -> ApiToken | None:
    secret = request.cookies.get(COOKIE)
    return state.cache.authenticate(secret) if secret else None


def _to_login() -> RedirectResponse:
    return RedirectResponse("/login", status_code=303)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/login", response_model=None)
async def login(request: Request, state: State) -> Response:
    """Check the token from the form and keep it in the session cookie."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    secret = (form.get("token") or [""])[0].strip()
    token = state.cache.authenticate(secret) if secret else None
    if token is None:
        error = "That token is unknown or revoked."
        return templates.TemplateResponse(
            request, "login.html", {"error": error}, status_code=401
        )
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        secret,
        max_age=COOKIE_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    logger.info("dashboard sign-in with token %s", token.id)
    return response


@router.post("/logout")
def logout() -> Response:
    response = _to_login()
    response.delete_cookie(COOKIE)
    return response


@router.get("/", response_class=HTMLResponse, response_model=None)
def jobs_page(
    request: Request, state: State, page: Annotated[int, Query(ge=1)] = 1
) -> Response:
    """List the signed-in token's jobs, with the form that submits a job."""
    token = _signed_in(request, state)
    if token is None:
        return _to_login()
    offset = (page - 1) * PAGE_SIZE
    jobs = _jobs(state, token, offset)
    return templates.TemplateResponse(
        request,
        "jobs.html",
        {
            "token": token,
            "jobs": jobs[:PAGE_SIZE],
            "page": page,
            "more": len(jobs) > PAGE_SIZE,
            "settings": state.settings,
        },
    )


def _jobs(state: Any, token: ApiToken, offset: int) -> list[Job]:
    if token.admin:
        return list(state.workspace.store.list_jobs(PAGE_SIZE + 1, offset))
    ids = state.tokens.owned_jobs(token.id, PAGE_SIZE + 1, offset)
    return [state.workspace.store.get_job(job_id) for job_id in ids]


@router.get("/jobs/{job_id}", response_class=HTMLResponse, response_model=None)
def job_page(job_id: str, request: Request, state: State) -> Response:
    """Show a job: live progress, the results per URL, failures and hooks."""
    token = _signed_in(request, state)
    if token is None:
        return _to_login()
    try:
        job = state.visible_job(token, job_id)
    except NotFoundError as error:
        return _error_page(request, str(error), 404)
    document = service.results(state.workspace, job_id)
    failures = [
        {**run, "url": entry["url"]}
        for entry in document["urls"]
        for run in entry["runs"]
        if run["state"] == "failed"
    ]
    context = {
        "token": token,
        "job": job,
        "document": document,
        "categories": document["job"]["settings"]["categories"],
        "failures": failures,
        "deliveries": hook_deliveries(state, job_id),
        "runner": state.runner.state_of(job_id),
    }
    return templates.TemplateResponse(request, "job.html", context)


@router.get("/compare", response_class=HTMLResponse, response_model=None)
def compare_page(request: Request, state: State, a: str = "", b: str = "") -> Response:
    """Compare two jobs per URL and metric; without both ids, show a chooser."""
    token = _signed_in(request, state)
    if token is None:
        return _to_login()
    comparison = None
    error = None
    if a and b:
        try:
            state.visible_job(token, a)
            state.visible_job(token, b)
            comparison = compare_jobs(state.workspace.store, a, b, CompareOptions())
        except LhfleetError as problem:
            error = str(problem)
    context = {
        "token": token,
        "a": a,
        "b": b,
        "jobs": _jobs(state, token, 0)[:PAGE_SIZE],
        "comparison": comparison,
        "error": error,
    }
    return templates.TemplateResponse(request, "compare.html", context)


def _error_page(request: Request, message: str, status: int) -> Response:
    return templates.TemplateResponse(
        request, "error.html", {"message": message}, status_code=status
    )
