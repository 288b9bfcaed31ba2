"""Auto concurrency: how many runs audit at once on this host, adjusted as they go.

Each run's page load happens inside the host-wide measurement window
(``lhfleet.window``), one at a time, while other runs do the work that
does not need a quiet CPU. More runs in flight keep the window busy, until
the insensitive work of the others starts to slow the measured one down.
The controller watches two things after every run:

- the runs' ``benchmarkIndex`` against the host's idle figure (from
  ``lhfleet calibrate``, or else the best figure seen so far in this
  process). The figure varies by some percent from run to run, so one low
  run is not enough: concurrency goes down by one when the median of the
  runs since the last change falls below ``tolerance`` of the idle figure
  (after two runs), or at once when a run falls below ``FLOOR`` of it;
- how busy the measurement window was since the last change: when it was
  idle for more than ``IDLE_SHARE`` of the time and the last runs (one per
  slot) were all within tolerance, concurrency goes up by one, up to the
  maximum.

A fixed ``--concurrency N`` uses the same slots and window, without
adjustments.
"""

from __future__ import annotations

import logging
import os
import statistics
import threading
import time
from dataclasses import dataclass, field

from lhfleet.window import MeasurementWindow

logger = logging.getLogger(__name__)

DEFAULT_TOLERANCE = 0.9
"""A run's benchmark index below this share of the idle figure counts as slowed."""
FLOOR = 0.7
"""A single run's benchmark index below this share of the idle figure lowers
concurrency at once."""
IDLE_SHARE = 0.15
"""Raise concurrency only while the window stood idle more than this share of time."""
START = 2


def auto_maximum() -> int:
    """Return the most runs in flight that auto concurrency may reach: cores + 1."""
    return (os.cpu_count() or 1) + 1


@dataclass
class Decision:
    """One change of the limit, kept for the job log and benchmarks."""

    at: float
    limit: int
    reason: str


@dataclass
class ConcurrencyController:
    """The number of worker slots allowed to audit now."""

    maximum: int
    window: MeasurementWindow
    adaptive: bool = True
    idle_benchmark: float | None = None
    tolerance: float = DEFAULT_TOLERANCE
    limit: int = 0
    decisions: list[Decision] = field(default_factory=list)
    _recent: list[float] = field(default_factory=list)
    """Benchmark indexes of the runs that finished since the last change."""
    _best_seen: float = 0.0
    _since: float = 0.0
    _held_at_change: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.limit <= 0:
            self.limit = min(START, self.maximum) if self.adaptive else self.maximum
        self._mark_change()

    @classmethod
    def fixed(cls, slots: int, window: MeasurementWindow) -> ConcurrencyController:
        return cls(maximum=slots, window=window, adaptive=False)

    def admits(self, slot: int) -> bool:
        """Tell whether slot number ``slot`` (from 0) may take a run now."""
        return slot < self.limit

    def reference(self) -> float | None:
        """Return the benchmark index that counts as undisturbed."""
        if self.idle_benchmark is not None:
            return self.idle_benchmark
        return self._best_seen or None

    def observe(self, benchmark_index: float | None) -> None:
        """Take the benchmark index of a finished run into account."""
        if not self.adaptive:
            return
        with self._lock:
            self._observe(benchmark_index)

    def _observe(self, benchmark_index: float | None) -> None:
        if benchmark_index is None:
            return
        reference = self.reference()
        self._best_seen = max(self._best_seen, benchmark_index)
        self._recent.append(benchmark_index)
        if reference is None:
            return
        typical = statistics.median(self._recent)
        if self.limit > 1 and benchmark_index < FLOOR * reference:
            self._change(
                self.limit - 1,
                f"benchmark index {benchmark_index:.0f} is below "
                f"{FLOOR:.0%} of {reference:.0f}",
            )
            return
        slowed = typical < self.tolerance * reference
        if self.limit > 1 and len(self._recent) >= 2 and slowed:
            self._change(
                self.limit - 1,
                f"the median benchmark index {typical:.0f} of the last "
                f"{len(self._recent)} runs is below {self.tolerance:.0%} "
                f"of {reference:.0f}",
            )
            return
        if slowed or len(self._recent) < self.limit or self.limit >= self.maximum:
            return
        idle = self.window_idle_share()
        if idle > IDLE_SHARE:
            self._change(
                self.limit + 1,
                f"the measurement window stood idle {idle:.0%} of the time",
            )

    def window_idle_share(self) -> float:
        """Return the share of time since the last change the window was free."""
        elapsed = time.monotonic() - self._since
        if elapsed <= 0:
            return 0.0
        held = self.window.stats.held_seconds - self._held_at_change
        return max(0.0, 1.0 - held / elapsed)

    def _change(self, limit: int, reason: str) -> None:
        logger.info("concurrency %d -> %d: %s", self.limit, limit, reason)
        self.limit = limit
        self.decisions.append(Decision(time.time(), limit, reason))
        self._recent = []
        self._mark_change()

    def _mark_change(self) -> None:
        self._since = time.monotonic()
        self._held_at_change = self.window.stats.held_seconds
