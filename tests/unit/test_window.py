"""The host-wide measurement window: exclusive across instances, cancellable."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from lhfleet.window import (
    BACKGROUND_NICE,
    MeasurementWindow,
    cpu_percent_since,
    set_priority,
)


def no_processes() -> list[int]:
    return []


def test_two_windows_on_one_root_never_overlap(tmp_path: Path) -> None:
    first = MeasurementWindow(tmp_path, prioritize=False)
    second = MeasurementWindow(tmp_path, prioritize=False)
    cancel = threading.Event()
    assert first.acquire("a", no_processes, cancel) is not None
    got: list[float | None] = []
    waiter = threading.Thread(
        target=lambda: got.append(second.acquire("b", no_processes, cancel))
    )
    waiter.start()
    time.sleep(0.3)
    assert not got, "the second window was granted while the first was held"
    first.release("a", no_processes)
    waiter.join(timeout=5)
    assert got and got[0] is not None and got[0] >= 0.25
    second.release("b", no_processes)
    assert first.stats.intervals[0][1] <= second.stats.intervals[0][0]


def test_threads_of_one_window_take_turns(tmp_path: Path) -> None:
    window = MeasurementWindow(tmp_path, prioritize=False)
    cancel = threading.Event()

    def hold(name: str) -> None:
        window.acquire(name, no_processes, cancel)
        time.sleep(0.05)
        window.release(name, no_processes)

    threads = [threading.Thread(target=hold, args=(f"t{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    intervals = sorted(window.stats.intervals)
    assert len(intervals) == 4
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert end <= start
    assert window.stats.grants == 4


def test_waiting_for_the_window_stops_on_cancel(tmp_path: Path) -> None:
    holder = MeasurementWindow(tmp_path, prioritize=False)
    other = MeasurementWindow(tmp_path, prioritize=False)
    holder.acquire("a", no_processes, threading.Event())
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    assert other.acquire("b", no_processes, cancel) is None
    holder.release("a", no_processes)
    assert other.acquire("b", no_processes, threading.Event()) is not None
    other.release("b", no_processes)


def test_release_by_another_holder_is_ignored(tmp_path: Path) -> None:
    window = MeasurementWindow(tmp_path, prioritize=False)
    window.acquire("a", no_processes, threading.Event())
    assert window.release("b", no_processes) is None
    busy = window.release("a", no_processes)
    assert busy is not None and 0.0 <= busy <= 100.0


def test_cpu_percent_counts_a_busy_core() -> None:
    start = psutil.cpu_times()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        pass
    cores = os.cpu_count() or 1
    assert cpu_percent_since(start) >= 100.0 / cores * 0.5


@pytest.mark.skipif(os.geteuid() != 0, reason="lowering a nice value needs root")
def test_priorities_switch_for_a_process_and_its_children(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "sleeper = [sys.executable, '-c', 'import time; time.sleep(30)']\n"
        "child = subprocess.Popen(sleeper)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        window = MeasurementWindow(tmp_path, prioritize=True)
        window.background([parent.pid])
        assert os.getpriority(os.PRIO_PROCESS, child) == BACKGROUND_NICE
        window.acquire("a", lambda: [parent.pid], threading.Event())
        assert os.getpriority(os.PRIO_PROCESS, parent.pid) == 0
        assert os.getpriority(os.PRIO_PROCESS, child) == 0
        window.release("a", lambda: [parent.pid])
        assert os.getpriority(os.PRIO_PROCESS, child) == BACKGROUND_NICE
    finally:
        for process in psutil.Process(parent.pid).children(recursive=True):
            process.kill()
        parent.kill()
        parent.wait()


def test_set_priority_skips_processes_that_are_gone() -> None:
    set_priority([2**22 + 12345], BACKGROUND_NICE)
