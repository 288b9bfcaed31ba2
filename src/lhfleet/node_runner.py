"""A long-lived Node process per worker slot that keeps Lighthouse loaded.

Starting Node and importing Lighthouse costs about a second per run; the
runner (``js/runner.mjs``) pays it once per slot and then audits one URL
at a time, each with a fresh Chrome and profile. Requests and events are
JSON lines on its stdin and stdout; its log goes to a file in the scratch
folder. A runner that overruns a deadline, is cancelled, or misbehaves is
killed with its Chrome, and the next audit starts a new one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from lhfleet.window import MeasurementWindow

logger = logging.getLogger(__name__)

RUNNER_SCRIPT = Path(__file__).parent / "js" / "runner.mjs"
START_TIMEOUT = 60.0
RENDER_TIMEOUT = 120.0
MAX_AUDITS_PER_RUNNER = 50
"""Audits before a runner is replaced, so a slow leak in Node cannot grow."""
LOG_TAIL = 4000
WINDOW_HOLD_LIMIT = 20.0
"""Seconds a run may hold the measurement window. The windows of the
documentation pages in BENCHMARKS.md last 4 to 8 s on 2 cores; a page still
loading after 20 s is slow or hung."""
MAX_WINDOW_EXTENSION = 90.0
"""Seconds of waiting for the measurement window that do not count against a
run's deadline: a few runs' worth of ``WINDOW_HOLD_LIMIT``. A longer
extension could outlast the run's lease."""


class RunnerGone(Exception):
    """The runner process exited or stopped responding."""


@dataclass
class RunnerAudit:
    """The runner's report of one audit."""

    ok: bool
    stopped: str | None = None
    """"timeout" or "cancelled" when lhfleet stopped the audit."""
    error: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float | None] = field(default_factory=dict)
    window_wait: float = 0.0
    window_cpu: float | None = None
    """The host's CPU use, in percent, while the run held the window."""
    window_span: tuple[float, float] | None = None
    """When the run held the window, as Unix times (start, end)."""
    window_overrun: bool = False
    """Whether the page load outlasted ``WINDOW_HOLD_LIMIT`` and gave the window
    back before its trace ended, so the end of its load was measured beside
    other runs."""
    log_tail: str = ""


class NodeRunner:
    """One runner process; used by one worker slot at a time."""

    def __init__(
        self, node: Path, node_modules: Path, log_path: Path, window: MeasurementWindow
    ) -> None:
        self.node = node
        self.node_modules = node_modules
        self.log_path = log_path
        self.window = window
        self.process: subprocess.Popen[bytes] | None = None
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.audits = 0
        self._sequence = 0
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> None:
        """Start the runner if it is not running; wait until Lighthouse is loaded."""
        if self.process is not None:
            if self.process.poll() is None and self.audits < MAX_AUDITS_PER_RUNNER:
                return
            self.stop()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.events = queue.Queue()
        self.process = subprocess.Popen(
            [
                str(self.node),
                str(RUNNER_SCRIPT),
                str(self.node_modules),
                str(self.log_path),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            start_new_session=True,
        )
        self.audits = 0
        reader = threading.Thread(
            target=_read_events,
            args=(self.process.stdout, self.events),
            name=f"lhfleet-runner-{self.process.pid}",
            daemon=True,
        )
        reader.start()
        try:
            event = self.events.get(timeout=START_TIMEOUT)
        except queue.Empty:
            event = None
        if event is None or event.get("event") != "ready":
            tail = self.log_tail(0)
            self.stop()
            raise RunnerGone(f"the Lighthouse runner did not start: {tail[-500:]}")
        self.window.background([self.process.pid])
        logger.debug(
            "runner %d loaded Lighthouse %s in %.2f s",
            self.process.pid,
            event.get("lighthouseVersion"),
            float(event.get("importSeconds") or 0.0),
        )

    def stop(self) -> None:
        """Kill the runner's process group (its Chrome is killed by profile path)."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_tail(self, since: int) -> str:
        """Return the end of the runner's log written since byte ``since``."""
        try:
            with self.log_path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(since, size - LOG_TAIL))
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def audit(
        self, request: dict[str, Any], timeout: float, cancel: threading.Event
    ) -> RunnerAudit:
        """Run one audit request; the deadline does not count window waits."""
        self.start()
        request_id = self._next_id()
        since = self.log_size()
        self._send({**request, "op": "audit", "id": request_id, "window": True})
        self.audits += 1
        outcome = RunnerAudit(ok=False)
        holder = f"{self.pid}:{request_id}"
        try:
            self._follow(request_id, holder, timeout, cancel, outcome)
        except (RunnerGone, OSError):
            outcome.error = {
                "message": "the Lighthouse runner exited during the audit",
                "phase": "exit",
            }
            self.stop()
        finally:
            self.window.release(holder, self._pids)
        if outcome.stopped is not None:
            self.stop()
        outcome.log_tail = self.log_tail(since)
        return outcome

    def _follow(
        self,
        request_id: str,
        holder: str,
        timeout: float,
        cancel: threading.Event,
        outcome: RunnerAudit,
    ) -> None:
        """Handle the runner's events for one audit until it is done or stopped."""
        deadline = time.monotonic() + timeout
        extension = 0.0
        while outcome.stopped is None:
            if cancel.is_set():
                outcome.stopped = "cancelled"
            elif time.monotonic() >= deadline:
                outcome.stopped = "timeout"
            if outcome.stopped is not None:
                return
            self._limit_hold(holder, outcome)
            try:
                event = self.events.get(timeout=0.25)
            except queue.Empty:
                continue
            if event is None:
                raise RunnerGone("the Lighthouse runner exited during an audit")
            if event.get("id") != request_id:
                continue
            granted = self._answer(event, request_id, holder, cancel, outcome)
            if granted is None:
                return
            granted = min(granted, MAX_WINDOW_EXTENSION - extension)
            extension += granted
            deadline += granted

    def _limit_hold(self, holder: str, outcome: RunnerAudit) -> None:
        """Release the window from a page load that keeps it too long.

        A page that never finishes loading would otherwise keep every other
        run of the host from measuring until its deadline.
        """
        span = outcome.window_span
        if span is None or span[0] != span[1] or outcome.window_overrun:
            return
        if time.time() - span[0] < WINDOW_HOLD_LIMIT:
            return
        busy = self.window.release(holder, self._pids)
        if busy is not None:
            outcome.window_cpu = busy
        outcome.window_overrun = True
        outcome.window_span = (span[0], time.time())
        logger.info(
            "runner %s: the page load held the measurement window over %g s; "
            "released it for other runs",
            self.pid,
            WINDOW_HOLD_LIMIT,
        )

    def _answer(
        self,
        event: dict[str, Any],
        request_id: str,
        holder: str,
        cancel: threading.Event,
        outcome: RunnerAudit,
    ) -> float | None:
        """Handle one event; return the seconds waited for the window, or None
        when the audit is over."""
        kind = event.get("event")
        if kind == "window-request":
            waited = self.window.acquire(holder, self._pids, cancel)
            if waited is None:
                outcome.stopped = "cancelled"
                return None
            outcome.window_wait += waited
            granted_at = time.time()
            outcome.window_span = (granted_at, granted_at)
            self._send({"op": "grant", "id": request_id})
            return waited
        if kind == "window-release":
            busy = self.window.release(holder, self._pids)
            if busy is not None:
                outcome.window_cpu = busy
            span = outcome.window_span
            if span is not None and not outcome.window_overrun:
                outcome.window_span = (span[0], time.time())
        elif kind == "warning":
            outcome.warnings.append(str(event.get("message", "")))
        elif kind == "done":
            outcome.ok = bool(event.get("ok"))
            outcome.error = dict(event.get("error") or {})
            outcome.timings = dict(event.get("timings") or {})
            return None
        return 0.0

    def render(self, input_path: Path, output_path: Path) -> None:
        """Render an HTML report from a JSON result file; raise RuntimeError."""
        self.start()
        request_id = self._next_id()
        since = self.log_size()
        self._send(
            {
                "op": "render",
                "id": request_id,
                "inputPath": str(input_path),
                "outputPath": str(output_path),
            }
        )
        deadline = time.monotonic() + RENDER_TIMEOUT
        while time.monotonic() < deadline:
            try:
                event = self.events.get(timeout=0.25)
            except queue.Empty:
                continue
            if event is None:
                self.stop()
                tail = self.log_tail(since)
                raise RuntimeError(
                    f"the Lighthouse runner exited while rendering: {tail}"
                )
            if event.get("id") == request_id and event.get("event") == "done":
                if not event.get("ok"):
                    message = (event.get("error") or {}).get("message", "")
                    raise RuntimeError(f"rendering the HTML report failed: {message}")
                return
        self.stop()
        raise RuntimeError("rendering the HTML report took longer than 120 s")

    def _pids(self) -> list[int]:
        return [] if self.pid is None else [self.pid]

    def _next_id(self) -> str:
        self._sequence += 1
        return f"r{self._sequence}"

    def _send(self, message: dict[str, Any]) -> None:
        process = self.process
        if process is None or process.stdin is None:
            raise RunnerGone("the Lighthouse runner is not running")
        try:
            process.stdin.write(json.dumps(message).encode("utf-8") + b"\n")
            process.stdin.flush()
        except (BrokenPipeError, ValueError) as error:
            raise RunnerGone("the Lighthouse runner closed its input") from error


def _read_events(
    stream: IO[bytes] | None, events: queue.Queue[dict[str, Any] | None]
) -> None:
    if stream is None:
        events.put(None)
        return
    try:
        for line in stream:
            try:
                event = json.loads(line)
            except ValueError:
                logger.warning("runner printed a line that is not JSON: %r", line[:200])
                continue
            if isinstance(event, dict):
                events.put(event)
    except (OSError, ValueError):
        pass
    events.put(None)
