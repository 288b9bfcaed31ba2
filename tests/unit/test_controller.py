"""Auto concurrency decisions, from benchmark indexes and window use."""

from __future__ import annotations

from pathlib import Path

from lhfleet.dispatch.controller import START, ConcurrencyController
from lhfleet.window import MeasurementWindow


def controller(tmp_path: Path, **options: object) -> ConcurrencyController:
    window = MeasurementWindow(tmp_path, prioritize=False)
    return ConcurrencyController(maximum=3, window=window, **options)  # type: ignore[arg-type]


def test_auto_starts_at_two_and_fixed_at_its_number(tmp_path: Path) -> None:
    assert controller(tmp_path).limit == START
    window = MeasurementWindow(tmp_path, prioritize=False)
    fixed = ConcurrencyController.fixed(5, window)
    fixed.observe(10.0)
    fixed.observe(10_000.0)
    assert fixed.limit == 5
    assert fixed.admits(4) and not fixed.admits(5)


def test_slowed_runs_lower_concurrency_down_to_one(tmp_path: Path) -> None:
    auto = controller(tmp_path, idle_benchmark=2000.0)
    auto.observe(1700.0)
    assert auto.limit == 2, "one run a little slow is within the usual variation"
    auto.observe(1600.0)
    assert auto.limit == 1
    assert "median benchmark index 1650 of the last 2 runs" in auto.decisions[0].reason
    auto.observe(1000.0)
    auto.observe(1000.0)
    assert auto.limit == 1


def test_a_much_slower_run_lowers_it_at_once(tmp_path: Path) -> None:
    auto = controller(tmp_path, idle_benchmark=2000.0)
    auto.observe(1300.0)
    assert auto.limit == 1
    assert "below 70% of 2000" in auto.decisions[0].reason


def test_undisturbed_runs_raise_it_while_the_window_stands_idle(
    tmp_path: Path,
) -> None:
    auto = controller(tmp_path, idle_benchmark=2000.0)
    auto.observe(1950.0)
    assert auto.limit == 2, "one good run per slot is needed before a raise"
    auto.observe(1990.0)
    assert auto.limit == 3
    for _ in range(5):
        auto.observe(2000.0)
    assert auto.limit == 3, "never above the maximum"


def test_a_busy_window_holds_concurrency(tmp_path: Path) -> None:
    auto = controller(tmp_path, idle_benchmark=2000.0)
    auto._since -= 10.0
    auto.window.stats.held_seconds += 9.5
    auto.observe(1990.0)
    auto.observe(1990.0)
    assert auto.limit == 2
    assert auto.window_idle_share() < 0.15


def test_without_calibration_the_best_figure_is_the_reference(
    tmp_path: Path,
) -> None:
    auto = controller(tmp_path)
    assert auto.reference() is None
    auto.observe(1800.0)
    auto.observe(2000.0)
    assert auto.reference() == 2000.0
    auto.observe(1300.0)
    assert auto.limit < 3
    assert auto.decisions[-1].reason.endswith("of 2000")


def test_runs_without_a_figure_change_nothing(tmp_path: Path) -> None:
    auto = controller(tmp_path, idle_benchmark=2000.0)
    for _ in range(4):
        auto.observe(None)
    assert auto.limit == START
    assert not auto.decisions
