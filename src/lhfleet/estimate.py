"""How long a job will take here, from the figures of the jobs this host ran.

Every run keeps its phase timings (``conditions.timings``). When a local
job completes, the medians of two of them go into ``host-profile.json`` in
the data directory, per host and preset, merged with what was there:

- the run's own time (``total`` less its wait for the measurement window),
- the measurement window (``window``): the part that runs one at a time.

With windows that never overlap and ``c`` runs in flight, a host finishes
at most ``min(c / run, 1 / window)`` runs per second. Auto concurrency
settles where adding a run stops helping, ``c = ceil(run / window)`` up to
its maximum. The estimate ignores retries and pages far slower than those
measured, so it is a floor more often than a ceiling.
"""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lhfleet.calibrate import host_name
from lhfleet.dispatch.controller import auto_maximum
from lhfleet.models import Run

logger = logging.getLogger(__name__)

PROFILE_FILE = "host-profile.json"
DEFAULT_RUN_SECONDS = 12.0
DEFAULT_WINDOW_SECONDS = 6.0
MAX_WEIGHT = 200
"""Runs' worth of weight the stored figures keep when a new job is merged in."""


@dataclass(frozen=True)
class Figures:
    """A host's median run and window seconds for one preset."""

    run_seconds: float
    window_seconds: float
    runs: int
    updated_at: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figures:
        return cls(
            run_seconds=float(data["run_seconds"]),
            window_seconds=float(data["window_seconds"]),
            runs=int(data.get("runs") or 0),
            updated_at=str(data.get("updated_at") or ""),
        )


@dataclass(frozen=True)
class Estimate:
    seconds: float
    concurrency: int
    figures: Figures | None

    def describe(self, total_runs: int) -> str:
        """Return the estimate in words, with where its figures come from."""
        duration = _duration(self.seconds)
        if self.figures is None:
            source = (
                "no job has run on this host yet, so it assumes "
                f"{DEFAULT_RUN_SECONDS:g} s a run, {DEFAULT_WINDOW_SECONDS:g} s "
                "of it measured alone: a rough figure"
            )
        else:
            source = (
                f"from {self.figures.runs} "
                f"{'run' if self.figures.runs == 1 else 'runs'} measured on this host: "
                f"{self.figures.run_seconds:.1f} s a run, "
                f"{self.figures.window_seconds:.1f} s of it measured alone"
            )
        return (
            f"Estimated duration: about {duration} for {total_runs} runs, "
            f"{self.concurrency} at a time ({source})."
        )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def profile_path(data_dir: Path) -> Path:
    return data_dir / PROFILE_FILE


def load_figures(
    data_dir: Path, preset: str, host: str | None = None
) -> Figures | None:
    """Return this host's figures for a preset, or None when it has none."""
    entry = _read(profile_path(data_dir)).get(host or host_name(), {}).get(preset)
    if not isinstance(entry, dict):
        return None
    try:
        return Figures.from_dict(entry)
    except (KeyError, TypeError, ValueError):
        return None


def estimate(
    total_runs: int, concurrency: int | str, figures: Figures | None
) -> Estimate:
    """Return the expected wall time of ``total_runs`` runs on this host."""
    run = figures.run_seconds if figures else DEFAULT_RUN_SECONDS
    window = figures.window_seconds if figures else DEFAULT_WINDOW_SECONDS
    window = max(window, 0.1)
    if concurrency == "auto":
        slots = min(auto_maximum(), max(1, math.ceil(run / window)))
    else:
        slots = max(1, int(concurrency))
    per_second = min(slots / run, 1.0 / window)
    return Estimate(total_runs / per_second, slots, figures)


def job_figures(runs: Iterable[Run]) -> tuple[float, float, int] | None:
    """Return the median run and window seconds of a job's timed runs."""
    run_seconds: list[float] = []
    window_seconds: list[float] = []
    for run in runs:
        timings = (run.conditions or {}).get("timings") or {}
        total = timings.get("total")
        window = timings.get("window")
        if not isinstance(total, int | float) or not isinstance(window, int | float):
            continue
        wait = timings.get("windowWait")
        wait = wait if isinstance(wait, int | float) else 0.0
        run_seconds.append(float(total) - float(wait))
        window_seconds.append(float(window))
    if not run_seconds:
        return None
    return (
        statistics.median(run_seconds),
        statistics.median(window_seconds),
        len(run_seconds),
    )


def record_job(data_dir: Path, preset: str, runs: Iterable[Run]) -> Figures | None:
    """Merge a completed job's figures into this host's profile; return them."""
    measured = job_figures(runs)
    if measured is None:
        return None
    run_seconds, window_seconds, count = measured
    path = profile_path(data_dir)
    entries = _read(path)
    host = entries.setdefault(host_name(), {})
    previous = load_figures(data_dir, preset)
    if previous is not None:
        weight = min(previous.runs, MAX_WEIGHT)
        total = weight + count
        run_seconds = (previous.run_seconds * weight + run_seconds * count) / total
        window_seconds = (
            previous.window_seconds * weight + window_seconds * count
        ) / total
        count = min(previous.runs + count, 10**9)
    figures = Figures(
        round(run_seconds, 3),
        round(window_seconds, 3),
        count,
        datetime.now(UTC).isoformat(),
    )
    host[preset] = asdict(figures)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError as error:
        logger.warning("could not update the host profile %s: %s", path, error)
        return None
    return figures


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        logger.warning("ignoring the unreadable host profile %s: %s", path, error)
        return {}
    return data if isinstance(data, dict) else {}
