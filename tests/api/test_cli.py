"""The token, hooks, submit, status and results commands, locally and with --server."""

from __future__ import annotations

import csv
import io
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from lhfleet import service
from lhfleet.api.schemas import JobRequest
from lhfleet.cli import main
from lhfleet.client import error_of, job_from_document
from lhfleet.errors import (
    AuthenticationError,
    InvalidFieldError,
    QuotaExceeded,
    RemoteError,
)
from lhfleet.hooks import HookSpec
from lhfleet.models import JobSecrets, JobSettings
from lhfleet.results import CSV_COLUMNS, job_document
from tests.api.conftest import LiveServer, Receiver


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_token_create_prints_secret(tmp_path: Path) -> None:
    code, out, err = invoke("token", "create", "ci", "--data-dir", str(tmp_path))
    assert code == 0
    assert out.startswith("lhf_")
    assert "shown only now" in err


def test_token_list_never_shows_secret(tmp_path: Path) -> None:
    _, secret, _ = invoke("token", "create", "ci", "--data-dir", str(tmp_path))
    code, out, _ = invoke("token", "list", "--json", "--data-dir", str(tmp_path))
    (listed,) = json.loads(out)
    assert code == 0
    assert listed["name"] == "ci"
    assert secret.strip() not in out


def test_token_quota_and_revoke(tmp_path: Path) -> None:
    data = ("--data-dir", str(tmp_path))
    invoke("token", "create", "ci", *data)
    quota = invoke("token", "quota", "ci", "--max-running-jobs", "2", *data)
    revoke = invoke("token", "revoke", "ci", *data)
    _, out, _ = invoke("token", "list", "--json", *data)
    (listed,) = json.loads(out)
    assert quota[0] == 0
    assert revoke[0] == 0
    assert listed["quota"]["max_running_jobs"] == 2
    assert listed["revoked_at"] is not None


def test_token_bad_quota_is_usage_error(tmp_path: Path) -> None:
    code, _, err = invoke(
        "token", "create", "ci", "--max-runs-per-day", "0", "--data-dir", str(tmp_path)
    )
    assert code == 2
    assert "--max-runs-per-day is '0'" in err


def test_duplicate_token_is_usage_error(tmp_path: Path) -> None:
    invoke("token", "create", "ci", "--data-dir", str(tmp_path))
    code, _, err = invoke("token", "create", "ci", "--data-dir", str(tmp_path))
    assert code == 2
    assert "exists already" in err


def test_hooks_command_lists_attempts(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses = [404]
    workspace = service.Workspace.open(tmp_path)
    hook = HookSpec.from_dict({"type": "webhook", "url": receiver.url})
    job = service.submit(
        workspace, ["http://127.0.0.1:9/"], JobSettings(runs=1), JobSecrets(), [hook]
    )
    service.cancel(workspace, job.id)
    code, out, _ = invoke("hooks", job.id, "--json", "--data-dir", str(tmp_path))
    redo, _, _ = invoke("hooks", job.id, "--redeliver", "--data-dir", str(tmp_path))
    (delivery,) = json.loads(out)
    assert code == 0
    assert delivery["state"] == "failed"
    assert [a["status_code"] for a in delivery["attempts"]] == [404]
    assert redo == 0
    assert len(receiver.wait_for(2)) == 2


def test_submit_needs_server(tmp_path: Path) -> None:
    code, _, err = invoke("submit", "http://127.0.0.1:9/", env={"LHFLEET_SERVER": ""})
    assert code == 2
    assert "needs --server" in err


def test_submit_detach_prints_id(live: LiveServer) -> None:
    code, out, _ = invoke(
        "submit", "http://127.0.0.1:9/", "--runs", "1", "--detach",
        "--server", live.url, "--token", live.server.user,
    )  # fmt: skip
    job_id = out.strip()
    assert code == 0
    assert live.server.workspace.store.get_job(job_id).total == 1


def test_submit_follows_to_results(live: LiveServer) -> None:
    server = live.server

    def settle_when_submitted() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            jobs = server.workspace.store.list_jobs()
            if jobs:
                time.sleep(0.5)
                server.settle_all(jobs[0].id)
                return
            time.sleep(0.1)

    settler = threading.Thread(target=settle_when_submitted)
    settler.start()
    code, out, err = invoke(
        "submit", "http://127.0.0.1:9/", "--runs", "2", "--json",
        "--server", live.url, env={"LHFLEET_TOKEN": server.user},
    )  # fmt: skip
    settler.join()
    document = json.loads(out)
    assert code == 0, err
    assert document["job"]["state"] == "completed"
    assert document["urls"][0]["valid_runs"] == 2


def test_submit_bad_token_exits_2(live: LiveServer) -> None:
    code, _, err = invoke(
        "submit", "http://127.0.0.1:9/", "--server", live.url, "--token", "lhf_bad"
    )
    assert code == 2
    assert "unknown or revoked" in err


def test_submit_invalid_url_exits_2(live: LiveServer) -> None:
    code, _, err = invoke(
        "submit", "ftp://x.test/", "--server", live.url, "--token", live.server.user
    )
    assert code == 2
    assert "unsupported scheme" in err


def test_unreachable_server_exits_4(closed_port: str) -> None:
    code, _, err = invoke("status", "J", "--server", closed_port, "--token", "lhf_x")
    assert code == 4
    assert "Cannot reach the lhfleet server" in err


def test_status_and_results_remote(live: LiveServer) -> None:
    server = live.server
    job = server.state.submitter.submit(
        server.state.tokens.get_token("user"),
        JobRequest.model_validate({"urls": ["http://127.0.0.1:9/a"], "runs": 2}),
    )
    server.settle_all(job.id)
    remote = ("--server", live.url, "--token", server.user)
    status = invoke("status", job.id, "--json", *remote)
    results = invoke("results", job.id, "--format", "json", *remote)
    table = invoke("results", job.id, *remote)
    rows = list(
        csv.reader(
            io.StringIO(invoke("results", job.id, "--format", "csv", *remote)[1])
        )
    )
    hooks = invoke("hooks", job.id, "--json", *remote)
    assert json.loads(status[1])["counts"]["succeeded"] == 2
    assert json.loads(results[1]) == service.results(server.workspace, job.id)
    assert job.id in table[1]
    assert rows[0] == CSV_COLUMNS
    assert len(rows) == 3
    assert json.loads(hooks[1]) == []


def test_job_document_round_trip(tmp_path: Path) -> None:
    workspace = service.Workspace.open(tmp_path)
    job = service.submit(
        workspace, ["http://127.0.0.1:9/"], JobSettings(runs=1), JobSecrets()
    )
    assert job_from_document(job_document(job)) == job


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, {"error": "no token"}, AuthenticationError),
        (422, {"error": "bad", "field": "runs"}, InvalidFieldError),
        (
            429,
            {"error": "over", "quota": "q", "limit": 1, "resets_at": None},
            QuotaExceeded,
        ),
        (500, {"error": "boom"}, RemoteError),
    ],
)
def test_error_of_maps_status(status: int, body: dict[str, object], kind: type) -> None:
    error = error_of(httpx.Response(status, json=body))
    assert isinstance(error, kind)
    assert str(body["error"]) in str(error)


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{holder.getsockname()[1]}"
