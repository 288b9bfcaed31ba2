"""The client of an lhfleet server: submit jobs, follow their progress, read results.

``lhfleet submit``, ``lhfleet status --server`` and ``lhfleet results
--server`` use it. The server's JSON errors come back as lhfleet's own
errors (401 as AuthenticationError, 429 as QuotaExceeded, and so on), so
the CLI prints them and exits as it does for a local job. Needs httpx
(the ``server`` extra).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import httpx
from rich.console import Console

from lhfleet import __version__
from lhfleet import console as views
from lhfleet.errors import (
    AuthenticationError,
    InputTooLargeError,
    InvalidFieldError,
    JobStateConflict,
    LhfleetError,
    NotFoundError,
    PermissionDenied,
    QuotaExceeded,
    RemoteError,
)
from lhfleet.lhr import METRIC_AUDITS
from lhfleet.models import CATEGORIES, Job, JobSettings, JobState
from lhfleet.results import CSV_COLUMNS

logger = logging.getLogger(__name__)

TOKEN_ENV = "LHFLEET_TOKEN"  # noqa: S105 - the variable's name, not a token
SERVER_ENV = "LHFLEET_SERVER"
TIMEOUT_SECONDS = 30.0
RECONNECT_SECONDS = 2.0


class LhfleetClient:
    """A connection to one lhfleet server, with one token."""

    def __init__(
        self,
        server: str,
        token: str | None,
        timeout: float = TIMEOUT_SECONDS,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not token:
            raise AuthenticationError(
                f"No token for {server}: pass --token or set {TOKEN_ENV}. An admin "
                "of the server creates one with `lhfleet token create NAME`."
            )
        self.server = server.rstrip("/")
        self.http = httpx.Client(
            base_url=self.server,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"lhfleet/{__version__}",
            },
            timeout=timeout,
            transport=transport,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> LhfleetClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(self, request: dict[str, Any]) -> dict[str, Any]:
        """Submit a job (the body of ``POST /api/jobs``); return the job."""
        return self._json("POST", "/api/jobs", json=request)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/jobs/{job_id}")

    def results(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/jobs/{job_id}/results")

    def hooks(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/jobs/{job_id}/hooks")

    def redeliver(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/api/jobs/{job_id}/hooks/redeliver")

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield the job's progress events, ``(name, job document)``, until it ends."""
        timeout = httpx.Timeout(TIMEOUT_SECONDS, read=None)
        path = f"/api/jobs/{job_id}/events"
        try:
            with self.http.stream("GET", path, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_of(response)
                yield from parse_events(response.iter_lines())
        except httpx.TransportError as error:
            raise self._unreachable(error) from error

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
        if response.status_code >= 400:
            raise error_of(response)
        data: dict[str, Any] = response.json()
        return data

    def _unreachable(self, error: httpx.TransportError) -> RemoteError:
        return RemoteError(
            f"Cannot reach the lhfleet server at {self.server}: {error}. Check "
            f"--server (or {SERVER_ENV}) and that `lhfleet serve` runs there."
        )


def error_of(response: httpx.Response) -> LhfleetError:
    """Return the lhfleet error for a server's error response."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = str(body.get("error") or response.text[:500] or response.reason_phrase)
    status = response.status_code
    if status == 401:
        return AuthenticationError(message)
    if status == 403:
        return PermissionDenied(message)
    if status == 404:
        return NotFoundError(message)
    if status == 409:
        return JobStateConflict(message)
    if status == 413:
        return InputTooLargeError(message)
    if status == 422:
        return InvalidFieldError(str(body.get("field") or "body"), message)
    if status == 429:
        return _quota_error(body, message)
    return RemoteError(f"The lhfleet server returned HTTP {status}: {message}")


def _quota_error(body: dict[str, Any], message: str) -> QuotaExceeded:
    resets = body.get("resets_at")
    resets_at = datetime.fromisoformat(resets).timestamp() if resets else None
    return QuotaExceeded(
        message, str(body.get("quota")), int(body.get("limit") or 0), resets_at
    )


def parse_events(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(event name, JSON data)`` from Server-Sent Events text lines."""
    event, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield event, json.loads("\n".join(data))
            event, data = "message", list[str]()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)


def job_from_document(document: dict[str, Any]) -> Job:
    """Return the Job that a job document (``GET /api/jobs/ID``) describes."""
    counts = document["counts"]
    finished = document.get("finished_at")
    return Job(
        id=document["id"],
        state=JobState(document["state"]),
        settings=JobSettings.from_dict(document["settings"]),
        created_at=datetime.fromisoformat(document["created_at"]),
        finished_at=datetime.fromisoformat(finished) if finished else None,
        total=counts["total"],
        succeeded=counts["succeeded"],
        failed=counts["failed"],
    )


def follow(
    client: LhfleetClient, job_id: str, console: Console, enabled: bool = True
) -> Job:
    """Show the job's progress bar until it completes; return the completed job.

    Follows the event stream, and reconnects when the connection drops.
    """
    latest = {"job": job_from_document(client.job(job_id))}
    failures: list[LhfleetError] = []

    def listen() -> None:
        while latest["job"].state is not JobState.COMPLETED:
            try:
                for _, document in client.events(job_id):
                    latest["job"] = job_from_document(document)
                latest["job"] = job_from_document(client.job(job_id))
            except RemoteError as error:
                logger.warning(
                    "job %s: event stream lost (%s); reconnecting", job_id, error
                )
                time.sleep(RECONNECT_SECONDS)
            except LhfleetError as error:
                failures.append(error)
                return

    listener = threading.Thread(target=listen, name="lhfleet-events", daemon=True)
    listener.start()
    views.watch(console, lambda: latest["job"], listener, enabled)
    if failures:
        raise failures[0]
    return latest["job"]


def results_csv(document: dict[str, Any]) -> str:
    """Return one CSV row per run of a results document, as ``--format csv`` does."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    job_id = document["job"]["id"]
    for entry in document["urls"]:
        for run in entry["runs"]:
            writer.writerow(
                [
                    job_id,
                    entry["url"],
                    run["id"],
                    run["index"],
                    run["state"],
                    run["attempts"],
                    run["error_code"] or "",
                    *(_cell(run["scores"].get(key)) for key in CATEGORIES),
                    *(_cell(run["metrics"].get(key)) for key in METRIC_AUDITS),
                    _cell(run["benchmark_index"]),
                    run["final_url"] or "",
                    run["report_html"] or "",
                ]
            )
    return buffer.getvalue()


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:g}"
