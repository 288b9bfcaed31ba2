"""The ``/api/jobs`` routes: submit, list, read, results, reports, cancel, retry.

Handlers that touch the job store are plain functions, which FastAPI runs
in its thread pool, so a slow SQLite write does not block the event loop.
The event stream is the one coroutine, and it reads the store in a thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from lhfleet import service
from lhfleet.api.auth import State, Token
from lhfleet.api.events import progress_stream
from lhfleet.api.schemas import JobRequest, error_responses
from lhfleet.api.state import ServerState
from lhfleet.compare import CompareOptions, compare_jobs
from lhfleet.errors import (
    InvalidSettingError,
    JobStateConflict,
    LhfleetError,
    NotFoundError,
)
from lhfleet.hooks import HookSpec, deliveries_document
from lhfleet.models import Job, JobState, Run
from lhfleet.ports import ApiToken
from lhfleet.results import job_document

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["jobs"])

MAX_PAGE = 200
MAX_OFFSET = 1_000_000_000
"""Largest offset of a job list: far above any store's job count, and below
the 64-bit integers that SQLite and PostgreSQL take as OFFSET."""
JSON_OBJECT: dict[str, Any] = {
    "description": "A JSON object.",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
HTML_PAGE: dict[str, Any] = {
    "description": "An HTML page.",
    "content": {"text/html": {"schema": {"type": "string"}}},
}
EVENT_STREAM: dict[str, Any] = {
    "description": "Server-Sent Events until the job completes.",
    "content": {
        "text/event-stream": {
            "schema": {
                "description": "One event: progress when the counts or state "
                "change, then end with the completed job. The data is the job "
                "document of GET /api/jobs/{job_id} without runner and hooks.",
                "type": "object",
                "properties": {
                    "event": {"enum": ["progress", "end"]},
                    "id": {"type": "string"},
                    "data": {"type": "string", "contentMediaType": "application/json"},
                },
                "required": ["event", "id", "data"],
            }
        }
    },
}
REPORT_POLICY = "sandbox allow-scripts allow-popups allow-downloads"
"""Content-Security-Policy of served Lighthouse reports: their scripts run in an
opaque origin, so they cannot read the dashboard's cookie or call the API."""


def job_view(state: ServerState, job: Job) -> dict[str, Any]:
    """Return the job document with the runner's state, hooks and links."""
    runner = state.runner.state_of(job.id)
    ledger = state.workspace.ledger
    deliveries = ledger.deliveries(job.id) if ledger else []
    return {
        **job_document(job),
        "runner": runner.to_dict() if runner else None,
        "hooks": [
            {
                "id": delivery.id,
                "hook": HookSpec.from_dict(delivery.spec).public_dict(),
                "state": delivery.state,
                "attempts": delivery.attempts,
            }
            for delivery in deliveries
        ],
        "links": {
            "self": f"/api/jobs/{job.id}",
            "results": f"/api/jobs/{job.id}/results",
            "events": f"/api/jobs/{job.id}/events",
            "hooks": f"/api/jobs/{job.id}/hooks",
            "dashboard": f"/jobs/{job.id}",
        },
    }


@router.post("/jobs", status_code=201, responses=error_responses(400, 403, 413, 429))
def create_job(
    body: JobRequest, response: Response, token: Token, state: State
) -> dict[str, Any]:
    """Submit a job to run in the background; respond 201 with the job."""
    job = state.submitter.submit(token, body)
    response.headers["Location"] = f"/api/jobs/{job.id}"
    return job_view(state, job)


@router.get("/jobs", responses=error_responses())
def list_jobs(
    token: Token,
    state: State,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """List the token's jobs (every job for an admin token), newest first."""
    if token.admin:
        jobs = state.workspace.store.list_jobs(limit=limit, offset=offset)
    else:
        ids = state.tokens.owned_jobs(token.id, limit, offset)
        jobs = [state.workspace.store.get_job(job_id) for job_id in ids]
    more = len(jobs) == limit
    return {
        "jobs": [job_document(job) for job in jobs],
        "limit": limit,
        "offset": offset,
        "next": f"/api/jobs?limit={limit}&offset={offset + limit}" if more else None,
    }


@router.get(
    "/jobs/{job_id}",
    response_class=Response,
    responses={200: JSON_OBJECT, **error_responses(404)},
)
async def get_job(job_id: str, token: Token, state: State) -> Response:
    """Return a job's state, run counts, runner state and hooks.

    Many clients poll this route, so a view read within the last
    ``progress_interval`` is served again without reading the store.
    """
    body = state.cached_view(token, job_id)
    if body is None:
        body = await run_in_threadpool(_fresh_view, state, token, job_id)
    return Response(body, media_type="application/json")


def _fresh_view(state: ServerState, token: ApiToken, job_id: str) -> bytes:
    view = job_view(state, state.visible_job(token, job_id))
    return state.remember_view(job_id, view)


@router.get("/jobs/{job_id}/results", responses=error_responses(404))
def get_results(job_id: str, token: Token, state: State) -> dict[str, Any]:
    """Return the results document, as ``lhfleet results JOB --format json``."""
    state.visible_job(token, job_id)
    return service.results(state.workspace, job_id)


@router.get("/jobs/{job_id}/hooks", responses=error_responses(404))
def get_hooks(job_id: str, token: Token, state: State) -> dict[str, Any]:
    """Return the job's hook deliveries, each with every attempt."""
    state.visible_job(token, job_id)
    return {"deliveries": hook_deliveries(state, job_id)}


def hook_deliveries(state: ServerState, job_id: str) -> list[dict[str, Any]]:
    """Return a job's deliveries and their attempts, secrets left out."""
    ledger = state.workspace.ledger
    return deliveries_document(ledger, job_id) if ledger else []


@router.post(
    "/jobs/{job_id}/hooks/redeliver",
    status_code=202,
    responses=error_responses(404),
)
def redeliver_hooks(job_id: str, token: Token, state: State) -> dict[str, Any]:
    """Deliver the job's failed hooks again, in the background."""
    job = state.visible_job(token, job_id)
    ledger = state.workspace.ledger
    count = ledger.redeliver_failed(job_id) if ledger else 0
    if count and job.state is JobState.COMPLETED:
        threading.Thread(
            target=_deliver_quietly, args=(state, job_id), name="lhfleet-hooks"
        ).start()
    return {"redelivering": count}


def _deliver_quietly(state: ServerState, job_id: str) -> None:
    try:
        service.deliver_owed_hooks(state.workspace, job_id)
    except LhfleetError as error:
        logger.error("job %s: delivering hooks failed: %s", job_id, error)


def _visible_run(state: ServerState, token: ApiToken, job_id: str, run_id: str) -> Run:
    state.visible_job(token, job_id)
    run = state.workspace.store.get_run(run_id)
    if run.job_id != job_id:
        raise NotFoundError(f"Job {job_id} has no run {run_id!r}.")
    return run


@router.get(
    "/jobs/{job_id}/runs/{run_id}/report.json",
    response_class=Response,
    responses={200: JSON_OBJECT, **error_responses(404)},
)
def get_report_json(job_id: str, run_id: str, token: Token, state: State) -> Response:
    """Return a run's full Lighthouse result (JSON)."""
    run = _visible_run(state, token, job_id, run_id)
    if run.report_json is None:
        raise NotFoundError(f"Run {run_id} has no report; it failed before one.")
    body = state.workspace.reports.read_json(run.report_json)
    return Response(body, media_type="application/json")


@router.get(
    "/jobs/{job_id}/runs/{run_id}/report.html",
    response_model=None,
    response_class=FileResponse,
    responses={200: HTML_PAGE, **error_responses(404)},
)
def get_report_html(
    job_id: str, run_id: str, token: Token, state: State
) -> FileResponse:
    """Return a run's HTML report, sandboxed so its scripts cannot reach the API."""
    run = _visible_run(state, token, job_id, run_id)
    if run.report_html is None:
        raise NotFoundError(f"Run {run_id} has no report; it failed before one.")
    path = Path(state.workspace.reports.locate(run.report_html))
    if not path.is_file():
        # NOTE: only reports in a local folder are served; an S3 report store
        # gives its own URL in the results document's report_html.
        raise NotFoundError(
            f"The HTML report of run {run_id} is not in a local folder "
            f"({path}); open it where the report store keeps it."
        )
    return FileResponse(
        path,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": REPORT_POLICY},
    )


@router.post(
    "/jobs/{job_id}/cancel", status_code=202, responses=error_responses(404, 409)
)
def cancel_job(job_id: str, token: Token, state: State) -> dict[str, Any]:
    """Cancel a running job: its unsettled runs fail as JOB_CANCELLED."""
    job = state.visible_job(token, job_id)
    if job.state is JobState.COMPLETED:
        raise JobStateConflict(
            f"Job {job_id} has already completed, so there is nothing to cancel. "
            f"POST /api/jobs/{job_id}/retry runs its failed runs again."
        )
    count = state.runner.cancel(job_id)
    return {"cancelling": count, "job": job_view(state, job)}


@router.post(
    "/jobs/{job_id}/retry", status_code=202, responses=error_responses(404, 409)
)
def retry_job(job_id: str, token: Token, state: State) -> dict[str, Any]:
    """Queue the job's failed runs (its dead letters) again and run them."""
    job = state.visible_job(token, job_id)
    if job.failed == 0:
        raise JobStateConflict(f"Job {job_id} has no failed runs to retry.")
    count = state.runner.retry(job_id)
    return {
        "queued": count,
        "job": job_view(state, state.workspace.store.get_job(job_id)),
    }


@router.get(
    "/jobs/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: EVENT_STREAM, **error_responses(404)},
)
async def job_events(job_id: str, token: Token, state: State) -> StreamingResponse:
    """Stream the job's progress as Server-Sent Events until it completes."""
    await run_in_threadpool(state.visible_job, token, job_id)
    return StreamingResponse(
        progress_stream(state.hub, job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/compare", responses=error_responses(404))
def compare(
    a: str, b: str, token: Token, state: State, confidence: float = 0.95
) -> dict[str, Any]:
    """Compare job B with job A per URL and metric, as ``lhfleet compare`` does."""
    state.visible_job(token, a)
    state.visible_job(token, b)
    if not 0.5 <= confidence < 1:
        raise InvalidSettingError(
            f"confidence is {confidence}; use a number from 0.5 to below 1."
        )
    options = CompareOptions(confidence=confidence)
    return compare_jobs(state.workspace.store, a, b, options).to_dict()
