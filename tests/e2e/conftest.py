"""A job that the exit status and extra header tests share, because audits are slow."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import PageServer
from tests.e2e.harness import AUDIT_OPTIONS, JOB_TIMEOUT, DataDir

SECRET = "tok-123"
SECRET_HEADERS = {"X-Secret": SECRET}


@dataclass(frozen=True)
class MixedJob:
    """A job of a page that loads, a page that returns 404 and a closed port.

    It runs once per test session with ``SECRET_HEADERS`` as extra headers,
    one run per URL and the default retries.
    """

    data: DataDir
    good: str
    missing: str
    closed: str
    completed: subprocess.CompletedProcess[str]

    @property
    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.completed.stdout)
        return document

    def runs(self) -> list[dict[str, Any]]:
        return [run for entry in self.document["urls"] for run in entry["runs"]]

    def only_run(self, url: str) -> dict[str, Any]:
        """Return the single run of ``url``."""
        (entry,) = [entry for entry in self.document["urls"] if entry["url"] == url]
        (run,) = entry["runs"]
        assert isinstance(run, dict)
        return run


@pytest.fixture(scope="session")
def mixed_job(
    page_server: PageServer,
    closed_port_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> MixedJob:
    data = DataDir(tmp_path_factory.mktemp("mixed") / "data")
    good = page_server.url("/?case=mixed")
    missing = page_server.url("/missing.html?case=mixed")
    completed = data.run(
        "run",
        good,
        missing,
        closed_port_url,
        "--runs",
        "1",
        *AUDIT_OPTIONS,
        "--extra-headers",
        json.dumps(SECRET_HEADERS),
        "--json",
        timeout=JOB_TIMEOUT,
    )
    return MixedJob(data, good, missing, closed_port_url, completed)
