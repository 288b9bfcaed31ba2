"""One Lighthouse audit with a fresh Chrome, with a deadline from outside.

Audits run in a long-lived Node runner per worker slot (see
``lhfleet.node_runner``); a runner that overruns a deadline is killed with
its Chrome. Each audit gets a private work folder under the data directory,
for its result and owner mark, and a private temporary folder with a short
path in the system's temp directory, which holds Chrome's profile. Every
Chrome process of the audit names the profile on its command line: that is
how the auditor finds and kills the Chrome that chrome-launcher starts
detached, and how a later lhfleet finds what a killed one left behind. The
path must stay short because Chrome puts a Unix socket in it, and socket
paths are limited to 107 bytes on Linux.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from lhfleet import codes
from lhfleet.models import JobSettings, LoginScript
from lhfleet.node_runner import NodeRunner, RunnerGone
from lhfleet.runtime import Runtime
from lhfleet.window import MeasurementWindow, shared_window, short_temp_root

logger = logging.getLogger(__name__)

REQUIRED_CHROME_FLAGS = (
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--mute-audio",
)
INTERRUPT_GRACE = 5.0
STDERR_TAIL = 4000
RENDER_SCRIPT = Path(__file__).parent / "js" / "render-html.mjs"
WORKDIR_PREFIX = "lhfleet-run-"
OWNER_FILE = "owner"
TEMP_FILE = "tempdir"
TEMP_PREFIX = "lhfleet-"

_CHROME_LAUNCH_MARKERS = (
    "unable to connect to chrome",
    "chrome_path",
    "no chrome installations found",
    "failed to launch",
    "spawn",
    "launcherror",
)
_CHROME_CRASH_MARKERS = (
    "target closed",
    "browser has disconnected",
    "websocket is not open",
    "session closed",
    "crashed",
    "econnreset",
)


@dataclass(frozen=True)
class AuditRequest:
    url: str
    settings: JobSettings
    extra_headers: dict[str, str] = field(default_factory=dict)
    login_script: LoginScript | None = None


@dataclass
class AuditResult:
    """The outcome of one attempt: a result (possibly with a runtimeError) or a code."""

    lhr: dict[str, Any] | None
    error_code: str | None = None
    error_message: str | None = None
    stderr_tail: str = ""
    duration: float = 0.0
    exit_code: int | None = None
    log_warnings: list[dict[str, str]] = field(default_factory=list)
    """Warnings that Lighthouse only logs, such as the dialogs it dismissed."""
    conditions: dict[str, Any] = field(default_factory=dict)
    """Measurement conditions of the run: its window wait and phase timings."""


class Auditor:
    """Runs Lighthouse in a long-lived runner per worker slot, a fresh Chrome per call.

    Worker slots are identified by the ``owner`` of each call; each gets its
    own runner process. All runners share one measurement window, so the
    traced page loads of concurrent audits never overlap.
    """

    def __init__(
        self,
        runtime: Runtime,
        scratch: Path,
        window: MeasurementWindow | None = None,
    ) -> None:
        self.runtime = runtime
        self.scratch = scratch
        self.window = window or shared_window()
        self._runners: dict[str, NodeRunner] = {}
        self._runners_lock = threading.Lock()
        self._local = threading.local()

    def audit(
        self,
        request: AuditRequest,
        label: str,
        owner: str,
        cancel: threading.Event | None = None,
    ) -> AuditResult:
        """Audit one URL in a work folder named by ``label`` and marked with ``owner``.

        The owner mark lets a later lhfleet remove what a killed one left.
        """
        workdir = self.scratch / f"{WORKDIR_PREFIX}{label}"
        cleanup_workdir(workdir)
        workdir.mkdir(parents=True)
        (workdir / OWNER_FILE).write_text(owner, encoding="utf-8")
        temp = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=short_temp_root()))
        (workdir / TEMP_FILE).write_text(str(temp), encoding="utf-8")
        started = time.monotonic()
        try:
            result = self._run(
                request, workdir, temp, owner, cancel or threading.Event()
            )
        finally:
            cleanup_workdir(workdir)
        result.duration = time.monotonic() - started
        return result

    def render_html(self, lhr_json: bytes) -> str:
        """Render Lighthouse's HTML report from a (redacted) JSON result.

        The calling slot's runner renders it when the slot has one, which
        saves starting Node; otherwise a one-off Node process does.
        """
        runner: NodeRunner | None = getattr(self._local, "runner", None)
        if runner is None:
            return self._render_once(lhr_json)
        folder = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=short_temp_root()))
        try:
            source = folder / "result.json"
            target = folder / "report.html"
            source.write_bytes(lhr_json)
            runner.render(source, target)
            return target.read_text(encoding="utf-8")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        """Stop every runner this auditor started."""
        with self._runners_lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.stop()

    def _render_once(self, lhr_json: bytes) -> str:
        completed = subprocess.run(
            [
                str(self.runtime.node),
                str(RENDER_SCRIPT),
                str(self.runtime.report_generator),
            ],
            input=lhr_json,
            capture_output=True,
            timeout=120,
            check=False,
        )
        if completed.returncode != 0:
            tail = completed.stderr.decode("utf-8", "replace")[-STDERR_TAIL:]
            raise RuntimeError(f"rendering the HTML report failed: {tail}")
        return completed.stdout.decode("utf-8")

    def runner_for(self, owner: str) -> NodeRunner:
        """Return the runner of a worker slot, created on first use."""
        with self._runners_lock:
            runner = self._runners.get(owner)
            if runner is None:
                name = re.sub(r"[^A-Za-z0-9_.-]", "_", owner)
                runner = NodeRunner(
                    self.runtime.node,
                    self.runtime.lighthouse_cli.parents[2],
                    self.scratch / f"runner-{name}.log",
                    self.window,
                )
                self._runners[owner] = runner
        self._local.runner = runner
        return runner

    def _run(
        self,
        request: AuditRequest,
        workdir: Path,
        temp: Path,
        owner: str,
        cancel: threading.Event,
    ) -> AuditResult:
        output = workdir / "result.json"
        runner = self.runner_for(owner)
        settings = request.settings
        payload: dict[str, Any] = {
            "url": request.url,
            "outputPath": str(output),
            "userDataDir": str(temp),
            "chromePath": str(self.runtime.chrome),
            "chromeFlags": chrome_flags(settings),
            "preset": settings.preset,
            "categories": list(settings.categories),
            "extraHeaders": request.extra_headers or None,
        }
        if request.login_script is not None:
            script = temp / f"login-{_script_name(request.login_script.name)}"
            script.write_text(request.login_script.source, encoding="utf-8")
            script.chmod(0o600)
            payload["loginScript"] = str(script)
        try:
            outcome = runner.audit(payload, settings.timeout, cancel)
        except RunnerGone as error:
            message = f"{error}. Run `lhfleet doctor` to check Node and Lighthouse."
            return AuditResult(None, codes.CHROME_LAUNCH_FAILED, message)
        tail = outcome.log_tail
        conditions = {
            "window_wait": round(outcome.window_wait, 3),
            "window_cpu_percent": outcome.window_cpu,
            "window_overrun": outcome.window_overrun,
            "window_span": (
                [round(value, 3) for value in outcome.window_span]
                if outcome.window_span
                else None
            ),
            "timings": outcome.timings,
        }
        warnings = dialog_warnings_from(outcome.warnings)
        if outcome.stopped == "cancelled":
            return AuditResult(
                None, codes.RUNNER_INTERRUPTED, "The run was interrupted.", tail
            )
        if outcome.stopped == "timeout":
            message = (
                f"The run took longer than its {settings.timeout:g} s deadline "
                "and was stopped. Raise --timeout for slow pages."
            )
            return AuditResult(None, codes.RUN_TIMEOUT, message, tail)
        if outcome.ok:
            result = _read_result(output, 0, tail)
        else:
            result = _runner_failure(outcome.error, tail)
        result.log_warnings = warnings
        result.conditions = conditions
        return result


def _script_name(name: str) -> str:
    """Return a safe file name that keeps the script's module kind (.mjs or .cjs)."""
    return "script.mjs" if name.endswith(".mjs") else "script.cjs"


def chrome_flags(settings: JobSettings) -> list[str]:
    """Return the Chrome flags of an audit: lhfleet's required ones, then the job's."""
    flags = list(REQUIRED_CHROME_FLAGS)
    if os.geteuid() == 0:
        flags.append("--no-sandbox")
    if settings.ignore_certificate_errors:
        flags.append("--ignore-certificate-errors")
    flags += settings.chrome_flags
    return flags


def _runner_failure(error: dict[str, Any], tail: str) -> AuditResult:
    """Return the code and message of an audit that threw instead of reporting."""
    message = str(error.get("message") or "Lighthouse gave no result.")
    code = error.get("code")
    if error.get("phase") == "login":
        reason = message.rstrip(".")
        message = (
            f"The login script failed: {reason}. Fix the script, then run "
            "`lhfleet retry JOB`."
        )
        return AuditResult(None, codes.LOGIN_SCRIPT_FAILED, message, tail)
    if error.get("phase") == "exit":
        # The runner stops on an error that Lighthouse did not catch, such as
        # a lost connection when Chrome dies, and its log names the cause.
        classified, text = classify_stderr(tail, None)
        if classified == codes.NO_RESULT:
            text = f"The Lighthouse runner exited during the audit: {_error_line(tail)}"
        return AuditResult(None, classified, text, tail)
    if error.get("phase") == "launch":
        return AuditResult(
            None,
            codes.CHROME_LAUNCH_FAILED,
            f"Chrome failed to launch: {message}",
            tail,
        )
    if isinstance(code, str) and (code in codes.TRANSIENT or code in codes.PERMANENT):
        return AuditResult(None, code, message, tail)
    classified, text = classify_stderr(f"{message}\n{error.get('stack', '')}", None)
    if classified == codes.NO_RESULT:
        text = f"Lighthouse stopped without a result: {message}"
    return AuditResult(None, classified, text, tail)


def cleanup_workdir(workdir: Path) -> int:
    """Kill the processes of a work folder and its temp folder, then remove both.

    A process belongs to the audit when its command line names either folder.
    """
    markers = [str(workdir)]
    try:
        temp = (workdir / TEMP_FILE).read_text(encoding="utf-8").strip()
    except OSError:
        temp = ""
    if temp and Path(temp).name.startswith(TEMP_PREFIX):
        markers.append(temp)
    killed = sum(kill_processes_using(marker) for marker in markers)
    if len(markers) > 1:
        shutil.rmtree(markers[1], ignore_errors=True)
    shutil.rmtree(workdir, ignore_errors=True)
    return killed


def sweep_scratch(scratch: Path, is_gone: Callable[[str], bool]) -> int:
    """Remove the work folders, and their Chrome, of owners that have exited.

    Folders of live owners (another lhfleet on the same data) are left alone.
    """
    swept = 0
    for workdir in sorted(scratch.glob(f"{WORKDIR_PREFIX}*")):
        try:
            owner = (workdir / OWNER_FILE).read_text(encoding="utf-8").strip()
        except OSError:
            owner = ""
        if owner and not is_gone(owner):
            continue
        killed = cleanup_workdir(workdir)
        logger.info("removed %s left by %s (%d processes)", workdir.name, owner, killed)
        swept += 1
    return swept


def kill_processes_using(marker: str) -> int:
    """Kill processes whose command line contains ``marker``; return how many."""
    victims = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.pid != os.getpid() and any(marker in part for part in cmdline):
            victims.append(proc)
    for proc in victims:
        try:
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(victims, timeout=5)
    if victims:
        logger.debug("killed %d leftover processes of %s", len(victims), marker)
    return len(victims)


_DIALOG = re.compile(r"(\w+) dialog opened by the page automatically suppressed")


def dialog_warnings_from(messages: list[str]) -> list[dict[str, str]]:
    """Return a warning per JavaScript dialog named in Lighthouse's log warnings."""
    return [warning for message in messages for warning in _dialog_warnings(message)]


def _dialog_warnings(text: str) -> list[dict[str, str]]:
    return [
        {
            "code": "JAVASCRIPT_DIALOG",
            "message": f"The page opened a JavaScript {kind} dialog, "
            "which Lighthouse dismissed.",
        }
        for kind in _DIALOG.findall(text)
    ]


def _tail(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-STDERR_TAIL:].decode("utf-8", "replace")


def _read_result(output: Path, exit_code: int | None, tail: str) -> AuditResult:
    try:
        lhr = json.loads(output.read_bytes())
    except (OSError, ValueError):
        lhr = None
    if isinstance(lhr, dict) and "lighthouseVersion" in lhr:
        error = lhr.get("runtimeError") or {}
        return AuditResult(
            lhr, error.get("code"), error.get("message"), tail, exit_code=exit_code
        )
    code, message = classify_stderr(tail, exit_code)
    return AuditResult(None, code, message, tail, exit_code=exit_code)


def classify_stderr(tail: str, exit_code: int | None) -> tuple[str, str]:
    """Return a code and message for a Lighthouse process that left no result."""
    lowered = tail.lower()
    last_line = _error_line(tail)
    if any(marker in lowered for marker in _CHROME_LAUNCH_MARKERS):
        return codes.CHROME_LAUNCH_FAILED, f"Chrome failed to launch: {last_line}"
    if any(marker in lowered for marker in _CHROME_CRASH_MARKERS):
        return codes.CHROME_CRASHED, f"Chrome crashed or disconnected: {last_line}"
    return (
        codes.NO_RESULT,
        f"Lighthouse exited with status {exit_code} and no result: {last_line}",
    )


def _error_line(tail: str) -> str:
    """Return the last line of a log that reads as an error, not a stack frame."""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    messages = [line for line in lines if not line.startswith("at ")]
    fatal = [line for line in messages if "FATAL" in line]
    errors = [line for line in messages if "error" in line.lower()]
    chosen = fatal or errors or messages or [""]
    return chosen[-1][:500]
