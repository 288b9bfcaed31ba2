"""The measurement window: the part of an audit that needs a quiet CPU.

Only part of a Lighthouse run is sensitive to other work on the host: the
CPU benchmark before navigation and the traced page load. Chrome start-up,
the artifacts gathered after the trace, the audits and the report are not.
lhfleet lets one run at a time, host-wide, be inside its window: a run
asks for the window after its Chrome has started and gives it back as soon
as the trace ends, so other runs fill the rest of the time with their own
insensitive work.

The window is a lock file in the system's temp directory, so separate
lhfleet processes on one host (a CLI job beside a cluster worker) share it.
While a run holds the window, its processes run at normal priority and the
others at the lowest (nice 19), so their work yields the CPU to the
measurement; changing priorities back needs root or CAP_SYS_NICE, and
without it lhfleet keeps everything at normal priority.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import resource
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.01
BACKGROUND_NICE = 19
LOCK_NAME = "measure.lock"
INTERVALS_KEPT = 1000


def short_temp_root() -> str:
    """Return a temp directory with a short path: /tmp when usable."""
    if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK):
        return "/tmp"
    return tempfile.gettempdir()


def window_root() -> Path:
    """Return the folder of this user's host-wide window lock."""
    return Path(short_temp_root()) / f"lhfleet-window-{os.getuid()}"


@dataclass
class WindowStats:
    """Usage figures of the window, for the concurrency controller and benchmarks."""

    held_seconds: float = 0.0
    waited_seconds: float = 0.0
    grants: int = 0
    intervals: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=INTERVALS_KEPT)
    )
    """The latest windows held in this process, as monotonic (start, end)."""


class MeasurementWindow:
    """A host-wide exclusive window, with priorities switched around it."""

    def __init__(self, root: Path | None = None, *, prioritize: bool = True) -> None:
        self.root = root or window_root()
        self.prioritize = prioritize and can_raise_priority()
        self.stats = WindowStats()
        self._local = threading.Lock()
        self._stats_lock = threading.Lock()
        self._holder: str | None = None
        self._handle = -1
        self._held_since = 0.0
        self._cpu_at_start = psutil.cpu_times()

    def acquire(
        self,
        holder: str,
        processes: Callable[[], Iterable[int]],
        cancel: threading.Event,
    ) -> float | None:
        """Wait for the window; return the seconds waited, or None when cancelled.

        ``processes`` lists the pids of the run (its runner and Chrome) whose
        priority goes up while it holds the window.
        """
        started = time.monotonic()
        while not self._local.acquire(timeout=0.25):
            if cancel.is_set():
                return None
        try:
            handle = self._lock_file(cancel)
        except BaseException:
            self._local.release()
            raise
        if handle is None:
            self._local.release()
            return None
        self._handle = handle
        self._holder = holder
        self._held_since = time.monotonic()
        self._cpu_at_start = psutil.cpu_times()
        waited = self._held_since - started
        with self._stats_lock:
            self.stats.waited_seconds += waited
            self.stats.grants += 1
        if self.prioritize:
            set_priority(processes(), 0)
        return waited

    def release(
        self, holder: str, processes: Callable[[], Iterable[int]]
    ) -> float | None:
        """Give the window back, if ``holder`` holds it, and lower its priority.

        Returns the host's CPU use during the window, in percent of all
        cores, or None when ``holder`` did not hold it.
        """
        if self._holder != holder:
            return None
        busy = cpu_percent_since(self._cpu_at_start)
        if self.prioritize:
            set_priority(processes(), BACKGROUND_NICE)
        now = time.monotonic()
        with self._stats_lock:
            self.stats.held_seconds += now - self._held_since
            self.stats.intervals.append((self._held_since, now))
        self._holder = None
        handle, self._handle = self._handle, -1
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_UN)
        os.close(handle)
        self._local.release()
        return busy

    def background(self, processes: Iterable[int]) -> None:
        """Put processes that are not measuring at the lowest priority."""
        if self.prioritize:
            set_priority(processes, BACKGROUND_NICE)

    def _lock_file(self, cancel: threading.Event) -> int | None:
        self.root.mkdir(mode=0o700, exist_ok=True)
        handle = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return handle
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    os.close(handle)
                    raise
            if cancel.wait(POLL_SECONDS):
                os.close(handle)
                return None


def can_raise_priority() -> bool:
    """Tell whether this process may lower a nice value again (root or CAP_SYS_NICE)."""
    if os.geteuid() == 0:
        return True
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)
    except (OSError, ValueError):
        return False
    # RLIMIT_NICE lets a process lower its nice value down to 20 - soft.
    return soft == resource.RLIM_INFINITY or 20 - soft <= 0


def set_priority(pids: Iterable[int], nice: int) -> None:
    """Set the nice value of processes and all their children; skip the gone."""
    for pid in pids:
        try:
            process = psutil.Process(pid)
            family = [process, *process.children(recursive=True)]
        except psutil.Error:
            continue
        for member in family:
            try:
                os.setpriority(os.PRIO_PROCESS, member.pid, nice)
            except (ProcessLookupError, PermissionError):
                continue


def cpu_percent_since(start: Any) -> float:
    """Return the host's CPU use since ``start`` (a psutil.cpu_times() value)."""
    end = psutil.cpu_times()
    total = sum(end) - sum(start)
    idle = (end.idle + getattr(end, "iowait", 0.0)) - (
        start.idle + getattr(start, "iowait", 0.0)
    )
    if total <= 0:
        return 0.0
    return float(round(100.0 * (1.0 - idle / total), 1))


_shared: MeasurementWindow | None = None
_shared_lock = threading.Lock()


def shared_window() -> MeasurementWindow:
    """Return this process's window, shared by every auditor and controller."""
    global _shared  # noqa: PLW0603 - one window per process, made on first use
    with _shared_lock:
        if _shared is None:
            _shared = MeasurementWindow()
        return _shared
