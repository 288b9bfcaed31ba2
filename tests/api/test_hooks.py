"""Completion hooks: specs, signatures, retries, once-only delivery and crashes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lhfleet import service
from lhfleet.config import load_config
from lhfleet.errors import InvalidSettingError
from lhfleet.hooks import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    Deliverer,
    HookCall,
    HookSpec,
    fire,
    parse_hook_option,
    sign,
    verify_signature,
)
from lhfleet.models import JobSecrets, JobSettings
from tests.api import hook_target
from tests.api.conftest import FACTS, OWNER, Receiver

SECRET = "hook-secret"
REPO = Path(__file__).resolve().parents[2]


def new_job(data_dir: Path, hooks: list[HookSpec], urls: int = 1) -> str:
    workspace = service.Workspace.open(data_dir)
    targets = [f"http://127.0.0.1:9/{number}" for number in range(urls)]
    job = service.submit(workspace, targets, JobSettings(runs=1), JobSecrets(), hooks)
    return job.id


def settle_last(workspace: service.Workspace, job_id: str) -> None:
    """Settle every run through the store, without completing the job's side work."""
    while run := workspace.store.claim_next(job_id, OWNER, 60, time.time()):
        workspace.store.record_success(
            run.id, OWNER, FACTS, "r.json.gz", "r.html", time.time()
        )


def webhook(receiver: Receiver, **extra: object) -> HookSpec:
    return HookSpec.from_dict(
        {"type": "webhook", "url": receiver.url, "secret": SECRET, **extra}
    )


def no_wait(_seconds: float) -> None:
    return


def test_parse_short_forms() -> None:
    web = parse_hook_option("webhook:https://hooks.test/x")
    command = parse_hook_option("command:echo done")
    python = parse_hook_option("python:pkg.mod:notify")
    assert web.url == "https://hooks.test/x"
    assert command.run == "echo done"
    assert python.target == "pkg.mod:notify"


def test_parse_json_form() -> None:
    spec = parse_hook_option(
        '{"type": "webhook", "url": "https://h.test/", "secret": "topsecret"}'
    )
    assert spec.secret == "topsecret"
    assert "topsecret" not in json.dumps(spec.public_dict())
    assert spec.public_dict()["signed"] is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sms:12345", "write webhook:URL"),
        ("webhook:ftp://h.test/", "http or https"),
        ("webhook:https://user:pw@h.test/", "user name or password"),
        ("python:notify", "module:function"),
        ("command:   ", "run must be a non-empty string"),
        ('{"type": "webhook", "url": "https://h.test/", "retries": 99}', "0 to 10"),
        ('{"type": "command", "run": "x", "url": "y"}', "unknown key 'url'"),
        ('{"type": "webhook", "url": "https://h.test/", "timeout": 0}', "timeout"),
        ("{not json", "not valid JSON"),
    ],
)
def test_parse_rejects_bad_hook(text: str, message: str) -> None:
    with pytest.raises(InvalidSettingError, match=message):
        parse_hook_option(text)


def test_config_hooks_become_defaults(tmp_path: Path) -> None:
    (tmp_path / "lhfleet.toml").write_text(
        '[[hooks]]\ntype = "webhook"\nurl = "https://h.test/"\n', encoding="utf-8"
    )
    defaults = load_config(folder=tmp_path).option_defaults()
    (text,) = defaults["hooks"]
    assert parse_hook_option(text).url == "https://h.test/"


def test_signature_verifies() -> None:
    body = b'{"event":"job.completed"}'
    header = sign(SECRET, body)
    assert header.startswith("sha256=")
    assert verify_signature(SECRET, body, header)
    assert not verify_signature("other", body, header)


def test_webhook_retried_after_500(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses = [500]
    job_id = new_job(tmp_path, [webhook(receiver)])
    workspace = service.Workspace.open(tmp_path)
    settle_last(workspace, job_id)
    waits: list[float] = []
    assert workspace.ledger is not None
    call = HookCall(job_id, "results.json", "completed", {"job": {"id": job_id}})
    Deliverer(workspace.ledger, sleep=waits.append).deliver_owed(call)
    received = receiver.wait_for(2)
    attempts = workspace.ledger.attempts(job_id)
    assert len(received) == 2
    assert [attempt.status_code for attempt in attempts] == [500, 200]
    assert all(
        verify_signature(SECRET, item.body, item.headers[SIGNATURE_HEADER])
        for item in received
    )
    assert {item.headers[DELIVERY_HEADER] for item in received} == {f"{job_id}-hook0"}
    assert len(waits) == 1
    assert 0.8 <= waits[0] <= 1.2


def test_webhook_404_not_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses = [404]
    job_id = new_job(tmp_path, [webhook(receiver)])
    workspace = service.Workspace.open(tmp_path)
    settle_last(workspace, job_id)
    service.complete(workspace, job_id)
    assert workspace.ledger is not None
    (delivery,) = workspace.ledger.deliveries(job_id)
    assert delivery.state == "failed"
    assert delivery.attempts == 1
    assert delivery.last_error == "HTTP 404"


def test_webhook_gives_up_after_retries(tmp_path: Path, receiver: Receiver) -> None:
    receiver.statuses = [503, 503, 503]
    job_id = new_job(tmp_path, [webhook(receiver, retries=2)])
    workspace = service.Workspace.open(tmp_path)
    settle_last(workspace, job_id)
    assert workspace.ledger is not None
    call = HookCall(job_id, "r", "completed", {})
    delivered = Deliverer(workspace.ledger, sleep=no_wait).deliver_owed(call)
    assert delivered == 0
    assert workspace.ledger.deliveries(job_id)[0].state == "failed"
    assert len(receiver.wait_for(3)) == 3


def test_completion_summary_sent(tmp_path: Path, receiver: Receiver) -> None:
    job_id = new_job(tmp_path, [webhook(receiver)], urls=2)
    workspace = service.Workspace.open(tmp_path)
    settle_last(workspace, job_id)
    service.complete(workspace, job_id)
    (delivery,) = receiver.wait_for(1)
    summary = delivery.json
    assert summary["event"] == "job.completed"
    assert summary["job"]["id"] == job_id
    assert summary["delivery"] == f"{job_id}-hook0"
    assert summary["results"].endswith(f"{job_id}/results.json")
    assert [entry["valid_runs"] for entry in summary["urls"]] == [1, 1]


def test_two_deliverers_fire_once(tmp_path: Path, receiver: Receiver) -> None:
    job_id = new_job(tmp_path, [webhook(receiver)])
    workspace = service.Workspace.open(tmp_path)
    settle_last(workspace, job_id)
    call = HookCall(job_id, "r", "completed", {})
    start = threading.Barrier(4)

    def deliver(number: int) -> None:
        other = service.Workspace.open(tmp_path)
        assert other.ledger is not None
        start.wait()
        Deliverer(other.ledger, owner=f"deliverer-{number}").deliver_owed(call)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(0.3)
    assert len(receiver.received) == 1


def test_command_hook_gets_job(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    spec = HookSpec.from_dict(
        {
            "type": "command",
            "run": f'echo "$LHFLEET_JOB_ID $LHFLEET_RESULTS" > {out}; cat >> {out}',
        }
    )
    call = HookCall("J1", "/data/J1/results.json", "completed", {"job": {"id": "J1"}})
    outcome = fire(spec, call, "J1-hook0")
    first, body = out.read_text().split("\n", 1)
    assert outcome.ok
    assert first == "J1 /data/J1/results.json"
    assert json.loads(body)["delivery"] == "J1-hook0"


def test_command_hook_failure_kept(tmp_path: Path) -> None:
    spec = HookSpec.from_dict({"type": "command", "run": "echo broken >&2; exit 3"})
    outcome = fire(spec, HookCall("J1", "r", "completed", {}), "J1-hook0")
    assert not outcome.ok
    assert outcome.status_code == 3
    assert outcome.error == "exited with status 3: broken"


def test_command_hook_timeout_kills() -> None:
    spec = HookSpec.from_dict({"type": "command", "run": "sleep 30", "timeout": 0.5})
    started = time.monotonic()
    outcome = fire(spec, HookCall("J1", "r", "completed", {}), "J1-hook0")
    assert not outcome.ok
    assert "timed out" in (outcome.error or "")
    assert time.monotonic() - started < 5


def test_python_hook_called_with_summary() -> None:
    hook_target.calls.clear()
    spec = HookSpec.from_dict(
        {"type": "python", "target": "tests.api.hook_target:record"}
    )
    outcome = fire(spec, HookCall("J1", "r", "completed", {"job": {"id": "J1"}}), "d")
    assert outcome.ok
    assert hook_target.calls == [{"job": {"id": "J1"}, "delivery": "d"}]


def test_python_hook_error_kept() -> None:
    spec = HookSpec.from_dict(
        {"type": "python", "target": "tests.api.hook_target:explode"}
    )
    outcome = fire(spec, HookCall("J1", "r", "completed", {"job": {"id": "J1"}}), "d")
    assert not outcome.ok
    assert outcome.error == "RuntimeError: hook of job J1 failed on purpose"
    assert outcome.retry


def test_python_hook_missing_not_retried() -> None:
    spec = HookSpec.from_dict({"type": "python", "target": "tests.api.nothing:here"})
    outcome = fire(spec, HookCall("J1", "r", "completed", {}), "d")
    assert not outcome.ok
    assert not outcome.retry


def crash(data_dir: Path, job_id: str, code: str) -> None:
    """Run ``code`` in a Python process that settles the job's runs, then dies."""
    script = textwrap.dedent(
        f"""
        import os, signal, time
        from pathlib import Path
        from lhfleet import service, hooks
        from lhfleet.lhr import ReportFacts
        from lhfleet.store.hook_ledger import SqlHookLedger
        workspace = service.Workspace.open(Path({str(data_dir)!r}))
        job_id = {job_id!r}
        def die(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGKILL)
        def settle_last(workspace, job_id):
            facts = ReportFacts(error_code=None, error_message=None)
            store = workspace.store
            while run := store.claim_next(job_id, "crasher", 60, time.time()):
                store.record_success(run.id, "crasher", facts, "r", "r", time.time())
        """
    ) + textwrap.dedent(code)
    completed = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert completed.returncode == -9, completed.stderr.decode()


def resume(data_dir: Path, job_id: str) -> None:
    workspace = service.Workspace.open(data_dir)
    service.drive(workspace, job_id, 1, threading.Event())


def test_crash_before_hooks_resumes_once(tmp_path: Path, receiver: Receiver) -> None:
    job_id = new_job(tmp_path, [webhook(receiver)])
    crash(tmp_path, job_id, "settle_last(workspace, job_id)\ndie()\n")
    before = list(receiver.received)
    resume(tmp_path, job_id)
    resume(tmp_path, job_id)
    assert before == []
    assert len(receiver.wait_for(1)) == 1
    time.sleep(0.2)
    assert len(receiver.received) == 1


def test_crash_while_delivering_resumes_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    job_id = new_job(tmp_path, [webhook(receiver)])
    code = """
        settle_last(workspace, job_id)
        hooks._OPENER.open = die
        service.complete(workspace, job_id)
    """
    crash(tmp_path, job_id, code)
    workspace = service.Workspace.open(tmp_path)
    assert workspace.ledger is not None
    left = workspace.ledger.deliveries(job_id)[0].state
    resume(tmp_path, job_id)
    assert left == "delivering"
    assert len(receiver.wait_for(1)) == 1
    assert workspace.ledger.deliveries(job_id)[0].state == "delivered"


def test_crash_after_sending_delivers_again(tmp_path: Path, receiver: Receiver) -> None:
    job_id = new_job(tmp_path, [webhook(receiver)])
    code = """
        settle_last(workspace, job_id)
        SqlHookLedger.record_attempt = die
        service.complete(workspace, job_id)
    """
    crash(tmp_path, job_id, code)
    resume(tmp_path, job_id)
    received = receiver.wait_for(2)
    assert len(received) == 2
    assert received[0].headers[DELIVERY_HEADER] == received[1].headers[DELIVERY_HEADER]
