"""The guarded auditor: guard proxies started at audit time, never stored.

A probing auditor replaces Lighthouse. When a run reaches it, it
sends two requests through the proxy that the run's Chrome flags name: one
to the site on 127.0.0.1, which the policy allows, and one to 127.0.0.2,
which it blocks. So each test sees whether the run's proxy was alive and
guarding at the moment of the audit.
"""

from __future__ import annotations

import dataclasses
import importlib
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from lhfleet import codes, service
from lhfleet.auditor import Auditor, AuditRequest, AuditResult
from lhfleet.cli.input_options import InputOptions, guard_settings
from lhfleet.errors import InvalidSettingError
from lhfleet.guard import GuardPolicy
from lhfleet.guard_auditor import GuardedAuditor
from lhfleet.models import JobSecrets, JobSettings
from lhfleet.runtime import Runtime
from tests.inputs.conftest import Site

ALLOW_SITE = ("127.0.0.1/32",)
GUARDED = JobSettings(runs=1, retries=0, guard=True, allowed_networks=ALLOW_SITE)
STALE_PROXY_FLAGS = (
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)
PROXY_FLAG = "--proxy-server=http://127.0.0.1:"
cli_jobs = importlib.import_module("lhfleet.cli.jobs")
"""The module; ``lhfleet.cli.jobs`` as an attribute is the ``jobs`` command."""


@dataclass(frozen=True)
class Probe:
    """The Chrome flags of one audit and the proxy's responses to its probes."""

    flags: tuple[str, ...]
    allowed: int | str | None
    """Status of the request to the allowed site, or the error, or None
    without a proxy."""

    blocked: int | str | None
    """The same for the request to the blocked address."""

    @property
    def proxy_ports(self) -> list[int]:
        return [
            int(flag.removeprefix(PROXY_FLAG))
            for flag in self.flags
            if flag.startswith(PROXY_FLAG)
        ]


def fetch_through(port: int, url: str) -> int | str:
    """Return the status of a GET through the proxy on ``port``, or the error."""
    handler = urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{port}"})
    try:
        with urllib.request.build_opener(handler).open(url, timeout=10) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return type(error).__name__


@dataclass
class ProbingAuditor(Auditor):
    """Replaces Lighthouse: probes the run's proxy, then fails the run.

    With ``interrupt`` set, the first audit sets the stop event and reports an
    interrupted run, as Ctrl-C during an audit does.
    """

    allowed_url: str
    blocked_url: str
    interrupt: bool = False
    probes: list[Probe] = field(default_factory=list)
    closed: int = 0

    def audit(
        self,
        request: AuditRequest,
        label: str,
        owner: str,
        cancel: threading.Event | None = None,
    ) -> AuditResult:
        if self.interrupt and cancel is not None:
            self.interrupt = False
            cancel.set()
            return AuditResult(None, codes.RUNNER_INTERRUPTED, "interrupted")
        probe = Probe(request.settings.chrome_flags, None, None)
        if probe.proxy_ports:
            port = probe.proxy_ports[-1]
            allowed = fetch_through(port, self.allowed_url)
            blocked = fetch_through(port, self.blocked_url)
            probe = dataclasses.replace(probe, allowed=allowed, blocked=blocked)
        self.probes.append(probe)
        return AuditResult(None, "NO_FCP", "The stand-in auditor paints nothing.")

    def render_html(self, lhr_json: bytes) -> str:
        return "<!doctype html><title>stand-in</title>"

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def probing(site: Site, other_site: Site) -> ProbingAuditor:
    site.html("/")
    other_site.html("/secret")
    return ProbingAuditor(site.url("/"), other_site.url("/secret"))


def request_with(settings: JobSettings) -> AuditRequest:
    return AuditRequest("http://127.0.0.1:9/", settings)


def port_refuses(port: int) -> bool:
    return fetch_through(port, "http://127.0.0.1:9/") == "URLError"


def test_unguarded_run_has_no_proxy(probing: ProbingAuditor) -> None:
    auditor = GuardedAuditor(probing)
    auditor.audit(request_with(JobSettings()), "a", "owner")
    (probe,) = probing.probes
    assert probe.flags == ()


def test_guarded_run_goes_through_proxy(probing: ProbingAuditor) -> None:
    auditor = GuardedAuditor(probing)
    auditor.audit(request_with(GUARDED), "a", "owner")
    auditor.close()
    (probe,) = probing.probes
    assert len(probe.proxy_ports) == 1
    assert "--proxy-bypass-list=<-loopback>" in probe.flags
    assert probe.allowed == 200
    assert probe.blocked == 403


def test_guarded_runs_share_proxy(probing: ProbingAuditor) -> None:
    auditor = GuardedAuditor(probing)
    auditor.audit(request_with(GUARDED), "a", "owner")
    auditor.audit(request_with(GUARDED), "b", "owner")
    auditor.close()
    first, second = probing.probes
    assert first.proxy_ports == second.proxy_ports


def test_close_stops_proxy(probing: ProbingAuditor) -> None:
    auditor = GuardedAuditor(probing)
    auditor.audit(request_with(GUARDED), "a", "owner")
    auditor.close()
    (port,) = probing.probes[0].proxy_ports
    assert port_refuses(port)
    assert probing.closed == 1


def test_run_after_close_gets_new_proxy(probing: ProbingAuditor) -> None:
    auditor = GuardedAuditor(probing)
    auditor.audit(request_with(GUARDED), "a", "owner")
    auditor.close()
    auditor.audit(request_with(GUARDED), "b", "owner")
    auditor.close()
    first, second = probing.probes
    assert first.proxy_ports != second.proxy_ports
    assert second.allowed == 200


def test_each_policy_gets_own_proxy(probing: ProbingAuditor) -> None:
    auditor = GuardedAuditor(probing)
    strict = dataclasses.replace(GUARDED, allowed_networks=())
    auditor.audit(request_with(GUARDED), "a", "owner")
    auditor.audit(request_with(strict), "b", "owner")
    auditor.close()
    lenient, strictest = probing.probes
    assert lenient.proxy_ports != strictest.proxy_ports
    assert lenient.allowed == 200
    assert strictest.allowed == 403


def test_server_policy_guards_every_run(probing: ProbingAuditor) -> None:
    auditor = GuardedAuditor(probing, GuardPolicy.from_cidrs(ALLOW_SITE))
    auditor.audit(request_with(JobSettings()), "a", "owner")
    auditor.close()
    (probe,) = probing.probes
    assert probe.allowed == 200
    assert probe.blocked == 403


def test_guarded_run_rejects_proxy_flag(probing: ProbingAuditor) -> None:
    settings = dataclasses.replace(GUARDED, chrome_flags=("--proxy-server=x:1",))
    auditor = GuardedAuditor(probing)
    with pytest.raises(InvalidSettingError, match="--proxy-server"):
        auditor.audit(request_with(settings), "a", "owner")
    assert probing.probes == []


def test_settings_keep_guard() -> None:
    restored = JobSettings.from_dict(GUARDED.to_dict())
    assert restored.guard is True
    assert restored.allowed_networks == ALLOW_SITE


def test_settings_default_unguarded() -> None:
    data = JobSettings().to_dict()
    del data["guard"], data["allowed_networks"]
    restored = JobSettings.from_dict(data)
    assert restored.guard is False
    assert restored.allowed_networks == ()


def test_stored_proxy_flags_read_as_guard() -> None:
    data = JobSettings(chrome_flags=("--mute-audio", *STALE_PROXY_FLAGS)).to_dict()
    restored = JobSettings.from_dict(data)
    assert restored.guard is True
    assert restored.chrome_flags == ("--mute-audio",)
    assert restored.allowed_networks == ()


def test_guard_settings_record_policy() -> None:
    inputs = InputOptions(allow_targets=("10.1.2.3/16", "::1"))
    settings = guard_settings(JobSettings(chrome_flags=("--mute-audio",)), inputs)
    assert settings.guard is True
    assert settings.allowed_networks == ("10.1.0.0/16", "::1/128")
    assert settings.chrome_flags == ("--mute-audio",)


def test_guard_settings_without_guard() -> None:
    assert guard_settings(JobSettings(), InputOptions()) == JobSettings()


def test_networks_without_guard_are_invalid() -> None:
    settings = JobSettings(allowed_networks=ALLOW_SITE)
    with pytest.raises(InvalidSettingError, match="Turn the guard on"):
        service.validate_settings(settings)


def test_guarded_settings_reject_proxy_flag() -> None:
    settings = dataclasses.replace(GUARDED, chrome_flags=("--no-proxy-server",))
    with pytest.raises(InvalidSettingError, match="--no-proxy-server"):
        service.validate_settings(settings)


def test_guarded_settings_reject_bad_network() -> None:
    settings = dataclasses.replace(GUARDED, allowed_networks=("10.0.0.300/8",))
    with pytest.raises(InvalidSettingError, match="is not an IP network"):
        service.validate_settings(settings)


class Commands:
    """``lhfleet run``, ``resume`` and ``retry`` in this process, on a stand-in."""

    def __init__(self, data_dir: Path, auditor: ProbingAuditor) -> None:
        self.data_dir = data_dir
        self.auditor = auditor

    def invoke(self, command: Any, *arguments: str) -> Result:
        options = ["--data-dir", str(self.data_dir), "--concurrency", "1"]
        return CliRunner().invoke(command, [*arguments, *options])

    def job_id(self) -> str:
        workspace = service.Workspace.open(self.data_dir)
        (job,) = workspace.store.list_jobs(limit=2, offset=0)
        return job.id

    def stored_settings(self) -> JobSettings:
        workspace = service.Workspace.open(self.data_dir)
        return workspace.store.get_job(self.job_id()).settings


@pytest.fixture
def commands(
    probing: ProbingAuditor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Commands]:
    """Run the commands with the probing auditor in place of Lighthouse."""
    fake = Runtime(*(tmp_path / name for name in ("node", "cli.js", "gen.js", "c")))
    monkeypatch.setattr(cli_jobs, "find_runtime", lambda: fake)
    monkeypatch.setattr(service, "Auditor", lambda _runtime, _scratch: probing)
    yield Commands(tmp_path / "data", probing)


def guarded_run(commands: Commands, site: Site) -> Result:
    return commands.invoke(
        cli_jobs.run,
        site.url("/"),
        *("--allow-target", "127.0.0.1/32", "--runs", "1", "--retries", "0"),
        *("--categories", "performance"),
    )


def test_run_stores_guard_not_proxy(commands: Commands, site: Site) -> None:
    result = guarded_run(commands, site)
    assert result.exit_code == 1, result.output
    settings = commands.stored_settings()
    assert settings.guard is True
    assert settings.allowed_networks == ALLOW_SITE
    assert settings.chrome_flags == ()


def test_run_audits_through_proxy(commands: Commands, site: Site) -> None:
    guarded_run(commands, site)
    (probe,) = commands.auditor.probes
    assert probe.allowed == 200
    assert probe.blocked == 403
    assert port_refuses(probe.proxy_ports[0])


def test_interrupted_job_resumes_guarded(commands: Commands, site: Site) -> None:
    commands.auditor.interrupt = True
    interrupted = guarded_run(commands, site)
    assert interrupted.exit_code == 130, interrupted.output
    assert commands.auditor.probes == []
    resumed = commands.invoke(cli_jobs.resume, commands.job_id())
    assert resumed.exit_code == 1, resumed.output
    (probe,) = commands.auditor.probes
    assert len(probe.proxy_ports) == 1
    assert probe.allowed == 200
    assert probe.blocked == 403


def test_retried_job_gets_fresh_proxy(commands: Commands, site: Site) -> None:
    guarded_run(commands, site)
    retried = commands.invoke(cli_jobs.retry, commands.job_id())
    assert retried.exit_code == 1, retried.output
    first, second = commands.auditor.probes
    assert len(second.proxy_ports) == 1
    assert second.proxy_ports != first.proxy_ports
    assert second.allowed == 200
    assert second.blocked == 403


def test_older_guarded_job_resumes_guarded(commands: Commands, site: Site) -> None:
    workspace = service.Workspace.open(commands.data_dir)
    settings = JobSettings(runs=1, retries=0, chrome_flags=STALE_PROXY_FLAGS)
    job = workspace.store.create_job(settings, JobSecrets(), [site.url("/")])
    resumed = commands.invoke(cli_jobs.resume, job.id)
    assert resumed.exit_code == 1, resumed.output
    (probe,) = commands.auditor.probes
    assert probe.proxy_ports != [9]
    assert len(probe.proxy_ports) == 1
    assert probe.allowed == 403
    assert probe.blocked == 403
