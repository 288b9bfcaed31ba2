"""One Lighthouse audit in its own process group, with a deadline from outside.

Each audit gets a private work folder under the data directory, for its
result and owner mark, and a private temporary folder with a short path in
the system's temp directory, which ``TMPDIR`` points at. Lighthouse's
Chrome profile lands in the temporary folder, so every Chrome process of
the audit names it on its command line: that is how the auditor finds and
kills the Chrome that chrome-launcher starts detached, and how a later
lhfleet finds what a killed one left behind. The path must stay short
because Chrome puts a Unix socket in it, and socket paths are limited to
107 bytes on Linux.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import signal
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
from lhfleet.models import JobSettings
from lhfleet.runtime import Runtime

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


class Auditor:
    """Runs the Lighthouse CLI, one process group and one fresh profile per call."""

    def __init__(self, runtime: Runtime, scratch: Path) -> None:
        self.runtime = runtime
        self.scratch = scratch

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
            result = self._run(request, workdir, cancel or threading.Event())
        finally:
            cleanup_workdir(workdir)
        result.duration = time.monotonic() - started
        return result

    def render_html(self, lhr_json: bytes) -> str:
        """Render Lighthouse's HTML report from a (redacted) JSON result."""
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

    def _run(
        self, request: AuditRequest, workdir: Path, cancel: threading.Event
    ) -> AuditResult:
        output = workdir / "result.json"
        command = self._command(request, workdir, output)
        env = {
            **os.environ,
            "TMPDIR": (workdir / TEMP_FILE).read_text(encoding="utf-8"),
            "CHROME_PATH": str(self.runtime.chrome),
        }
        stderr_path = workdir / "stderr.log"
        with stderr_path.open("wb") as stderr:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                cwd=workdir,
                start_new_session=True,
            )
            stopped = _wait(process, request.settings.timeout, cancel)
        tail = _tail(stderr_path)
        log_warnings = dialog_warnings(stderr_path)
        if stopped == "cancelled":
            return AuditResult(
                None, codes.RUNNER_INTERRUPTED, "The run was interrupted.", tail
            )
        if stopped == "timeout":
            message = (
                f"The run took longer than its {request.settings.timeout:g} s deadline "
                "and was stopped. Raise --timeout for slow pages."
            )
            return AuditResult(None, codes.RUN_TIMEOUT, message, tail)
        result = _read_result(output, process.returncode, tail)
        result.log_warnings = log_warnings
        return result

    def _command(self, request: AuditRequest, workdir: Path, output: Path) -> list[str]:
        settings = request.settings
        flags = list(REQUIRED_CHROME_FLAGS)
        if os.geteuid() == 0:
            flags.append("--no-sandbox")
        if settings.ignore_certificate_errors:
            flags.append("--ignore-certificate-errors")
        flags += settings.chrome_flags
        command = [
            str(self.runtime.node),
            str(self.runtime.lighthouse_cli),
            request.url,
            "--output=json",
            f"--output-path={output}",
            "--locale=en-US",
            f"--chrome-flags={' '.join(flags)}",
            f"--only-categories={','.join(settings.categories)}",
        ]
        if settings.preset == "desktop":
            command.append("--preset=desktop")
        if request.extra_headers:
            headers = workdir / "headers.json"
            headers.write_text(json.dumps(request.extra_headers), encoding="utf-8")
            headers.chmod(0o600)
            command.append(f"--extra-headers={headers}")
        return command


def _wait(
    process: subprocess.Popen[bytes], timeout: float, cancel: threading.Event
) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            process.wait(timeout=0.25)
            return "exited"
        except subprocess.TimeoutExpired:
            pass
        if cancel.is_set():
            stop_process_group(process)
            return "cancelled"
        if time.monotonic() >= deadline:
            stop_process_group(process)
            return "timeout"


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Interrupt Lighthouse (it closes its Chrome), then kill its whole group."""
    try:
        os.killpg(process.pid, signal.SIGINT)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=INTERRUPT_GRACE)
    except subprocess.TimeoutExpired:
        logger.warning(
            "Lighthouse pid %d ignored SIGINT; killing its group", process.pid
        )
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def short_temp_root() -> str:
    """Return a temp directory with a short path: /tmp when usable."""
    if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK):
        return "/tmp"
    return tempfile.gettempdir()


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
MAX_LOG_SCAN = 4 * 1024 * 1024


def dialog_warnings(stderr_path: Path) -> list[dict[str, str]]:
    """Return a warning per JavaScript dialog Lighthouse dismissed, from its log."""
    try:
        with stderr_path.open("rb") as handle:
            text = handle.read(MAX_LOG_SCAN).decode("utf-8", "replace")
    except OSError:
        return []
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
