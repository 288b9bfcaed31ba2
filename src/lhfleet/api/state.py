"""The state every request handler of the server shares, built once at start."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lhfleet import service
from lhfleet.api.events import ProgressHub
from lhfleet.api.runner import JobRunner
from lhfleet.api.settings import ServerSettings
from lhfleet.api.submission import Submitter
from lhfleet.api.tokens import authenticate, hash_secret
from lhfleet.auditor import Auditor
from lhfleet.errors import InvalidSettingError, NotFoundError
from lhfleet.guard_auditor import GuardedAuditor
from lhfleet.models import Job
from lhfleet.ports import ApiToken, TokenStore
from lhfleet.runtime import Runtime, find_runtime
from lhfleet.store.sql import SqlJobStore
from lhfleet.store.tokens import SqlTokenStore

logger = logging.getLogger(__name__)

VIEW_CACHE_SIZE = 1000


class TokenCache:
    """Checked tokens, trusted for a few seconds to spare the store a read per request.

    ``forget`` drops a token at once, so a revocation made through this
    server takes effect on the next request.
    """

    def __init__(self, store: TokenStore, seconds: float) -> None:
        self.store = store
        self.seconds = seconds
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[ApiToken, float]] = {}

    def cached(self, secret: str) -> ApiToken | None:
        """Return the token of a secret checked in the last few seconds, or None."""
        with self._lock:
            entry = self._entries.get(hash_secret(secret))
        if entry is not None and entry[1] > time.monotonic():
            return entry[0]
        return None

    def authenticate(self, secret: str) -> ApiToken | None:
        """Return the active token of a secret, or None; reads the store on a miss."""
        found = self.cached(secret)
        if found is not None:
            return found
        key = hash_secret(secret)
        now = time.monotonic()
        token = authenticate(self.store, secret)
        if token is not None:
            with self._lock:
                self._entries[key] = (token, now + self.seconds)
        return token

    def forget(self, token_id: str) -> None:
        with self._lock:
            self._entries = {
                key: entry
                for key, entry in self._entries.items()
                if entry[0].id != token_id
            }


@dataclass
class ServerState:
    """The workspace, token store, runner and progress hub behind the routes."""

    workspace: service.Workspace
    tokens: TokenStore
    settings: ServerSettings
    runner: JobRunner
    hub: ProgressHub
    cache: TokenCache
    submitter: Submitter
    closers: list[Callable[[], None]] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)
    """Owner token of each job seen so far; a job's owner never changes."""

    views: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    """Recent job views by job id, encoded as JSON, with when each expires
    (monotonic time)."""

    def owner_of(self, job_id: str) -> str | None:
        owner = self.owners.get(job_id)
        if owner is None:
            owner = self.tokens.owner_of(job_id)
            if owner is not None:
                self.owners[job_id] = owner
        return owner

    def cached_view(self, token: ApiToken, job_id: str) -> bytes | None:
        """Return a job view read within ``progress_interval``, or None.

        Reads no store, so the event loop may call it; None also when the
        token may not see the job, so that the caller reads the store.
        """
        owner = self.owners.get(job_id)
        if not token.admin and (owner is None or owner != token.id):
            return None
        entry = self.views.get(job_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def remember_view(self, job_id: str, view: dict[str, Any]) -> bytes:
        """Keep a job view for ``progress_interval``; return it encoded as JSON."""
        body = json.dumps(view, separators=(",", ":")).encode("utf-8")
        expires = time.monotonic() + self.settings.progress_interval
        self.views[job_id] = (expires, body)
        if len(self.views) > VIEW_CACHE_SIZE:
            now = time.monotonic()
            self.views = {k: v for k, v in self.views.items() if v[0] >= now}
        return body

    def visible_job(self, token: ApiToken, job_id: str) -> Job:
        """Return a job the token may see; NotFoundError for others' jobs too.

        Another token's job gets the same response as a job that does not
        exist, so a token cannot learn which job ids exist.
        """
        if not token.admin and self.owner_of(job_id) != token.id:
            raise NotFoundError(
                f"No job {job_id!r} among the jobs of this token. List them with "
                "GET /api/jobs."
            )
        return self.workspace.store.get_job(job_id)

    def close(self) -> None:
        for closer in reversed(self.closers):
            closer()


def build_state(
    workspace: service.Workspace,
    settings: ServerSettings,
    runtime: Runtime | None = None,
) -> ServerState:
    """Build the server's state on a workspace; nothing runs until the app starts.

    ``runtime`` (Node, Lighthouse, Chromium) is found on first use when not
    given, so a server whose jobs never run needs none.
    """
    if not isinstance(workspace.store, SqlJobStore):
        raise InvalidSettingError(
            "lhfleet serve needs the SQL job store (SQLite or PostgreSQL) for its "
            "tokens and hooks."
        )
    tokens = SqlTokenStore.beside(workspace.store)
    closers: list[Callable[[], None]] = []
    make_auditor = _auditor_factory(workspace, settings, runtime, closers)
    runner = JobRunner(
        workspace, make_auditor, settings.concurrency, settings.parallel_jobs
    )
    hub = ProgressHub(workspace.store.get_job, settings.progress_interval)
    return ServerState(
        workspace=workspace,
        tokens=tokens,
        settings=settings,
        runner=runner,
        hub=hub,
        cache=TokenCache(tokens, settings.token_cache_seconds),
        submitter=Submitter(workspace, tokens, settings, runner),
        closers=closers,
    )


def _auditor_factory(
    workspace: service.Workspace,
    settings: ServerSettings,
    runtime: Runtime | None,
    closers: list[Callable[[], None]],
) -> Callable[[], Auditor]:
    """Return a function that makes the one Auditor, on first use.

    A guarded server sends every run through its guard proxy; otherwise the
    runs of jobs stored as guarded go through a proxy of their own policy.
    """
    lock = threading.Lock()
    built: dict[str, Auditor] = {}

    def make() -> Auditor:
        with lock:
            if "auditor" not in built:
                built["auditor"] = _first_auditor(workspace, settings, runtime, closers)
            return built["auditor"]

    return make


def _first_auditor(
    workspace: service.Workspace,
    settings: ServerSettings,
    runtime: Runtime | None,
    closers: list[Callable[[], None]],
) -> Auditor:
    runtime = runtime or find_runtime()
    auditor = GuardedAuditor(Auditor(runtime, workspace.scratch), settings.policy())
    closers.append(auditor.close)
    return auditor
