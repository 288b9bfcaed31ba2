"""Commands that judge results: compare, assert, report, calibrate; and run's options.

``lhfleet run`` takes ``--config``, ``--assert``, ``--runs auto`` and the
statistics options from here, through ``config_option``,
``analysis_options`` and ``RUNS``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from lhfleet import service
from lhfleet.aggregate import check_rule
from lhfleet.assertions import Outcome, check_job, has_errors
from lhfleet.calibrate import (
    DEFAULT_SAMPLES,
    calibration_path,
    load_calibration,
    measure,
    save_calibration,
)
from lhfleet.cli.common import data_dir_option, handle_errors, open_workspace, stderr
from lhfleet.cli.common import stdout as stdout_console
from lhfleet.compare import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_CHANGE,
    IMPROVED,
    REGRESSED,
    CompareOptions,
    Comparison,
    compare_jobs,
    comparison_markdown,
    format_change,
)
from lhfleet.config import (
    Config,
    compare_defaults,
    load_config,
    require_assertions,
)
from lhfleet.errors import (
    AssertionsFailed,
    LhfleetError,
    RegressionFound,
)
from lhfleet.models import JobSettings
from lhfleet.runtime import Runtime, find_runtime
from lhfleet.stats import DEFAULT_SPREAD_TARGET, check_key
from lhfleet.summary import format_value, write_html

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_KEY = "lhfleet.config"
DEFAULT_MIN_RUNS = 3
DEFAULT_MAX_RUNS = 10


class RunsType(click.ParamType[int | str, Any]):
    """``--runs``: a whole number from 1, or ``auto``."""

    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        if text.isdigit() and int(text) >= 1:
            return int(text)
        self.fail(f"{value!r} is neither a whole number from 1 nor auto", param, ctx)


RUNS = RunsType()


def _read_config(ctx: click.Context, _param: Any, value: Path | None) -> None:
    try:
        config = load_config(value)
    except LhfleetError as error:
        raise click.UsageError(str(error), ctx) from error
    ctx.meta[CONFIG_KEY] = config
    compare = ctx.info_name == "compare"
    defaults = compare_defaults(config) if compare else config.option_defaults()
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def config_option(command: F) -> F:
    """Add ``--config``: read lhfleet.toml (or a lighthouserc.json) before the rest."""
    return click.option(
        "--config",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        is_eager=True,
        expose_value=False,
        callback=_read_config,
        help="lhfleet.toml or lighthouserc.json to read "
        "[default: the one in the working directory].",
    )(command)


def current_config() -> Config:
    """Return the Config that ``--config`` read for the running command."""
    context = click.get_current_context(silent=True)
    found = context.meta.get(CONFIG_KEY) if context else None
    return found if isinstance(found, Config) else Config()


@dataclass(frozen=True)
class AnalysisOptions:
    """The options of ``lhfleet run`` on statistics, fidelity and assertions."""

    min_runs: int = DEFAULT_MIN_RUNS
    max_runs: int = DEFAULT_MAX_RUNS
    target_spread: str = DEFAULT_SPREAD_TARGET
    representative: str = "lighthouse"
    contention_ratio: float = 0.8
    calibrate: bool = False
    check_assertions: bool = False

    def apply(self, settings: JobSettings, runs: int | str) -> JobSettings:
        """Return the settings with the run count, rule and spread target set."""
        check_rule(self.representative)
        adaptive = runs == "auto"
        return dataclasses.replace(
            settings,
            runs=self.min_runs if adaptive else int(runs),
            max_runs=self.max_runs if adaptive else None,
            spread_target=self.target_spread,
            representative=self.representative,
            contention_ratio=self.contention_ratio,
        )

    def with_host(
        self, settings: JobSettings, workspace: service.Workspace, runtime: Runtime
    ) -> JobSettings:
        """Return the settings with the host's idle figure, measured if asked."""
        calibration = load_calibration(workspace.data_dir)
        if self.calibrate:
            stderr.print("Calibrating this host (a few lone Lighthouse runs)...")
            calibration = measure(runtime, workspace.scratch)
            save_calibration(workspace.data_dir, calibration)
        if calibration is None:
            stderr.print(
                "[yellow]This host is not calibrated[/yellow], so contended runs "
                "cannot be marked; run `lhfleet calibrate` once, or add --calibrate."
            )
            return settings
        return dataclasses.replace(
            settings, host_benchmark_index=calibration.benchmark_index
        )

    def check(self, workspace: service.Workspace, job_id: str) -> None:
        """With ``--assert``: check the job's assertions; raise on an error."""
        if self.check_assertions:
            check_and_print(workspace, job_id, current_config(), stderr)


ANALYSIS_OPTIONS = [
    click.option(
        "--min-runs",
        type=click.IntRange(1, 100),
        default=DEFAULT_MIN_RUNS,
        show_default=True,
        help="With --runs auto: runs per URL to start with.",
    ),
    click.option(
        "--max-runs",
        type=click.IntRange(1, 100),
        default=DEFAULT_MAX_RUNS,
        show_default=True,
        help="With --runs auto: the most runs per URL.",
    ),
    click.option(
        "--target-spread",
        default=DEFAULT_SPREAD_TARGET,
        show_default=True,
        help="KEY:MEASURE=LIMIT: the spread a URL must stay within to be "
        "trusted (cv or iqr); --runs auto adds runs until it is met.",
    ),
    click.option(
        "--representative",
        default="lighthouse",
        show_default=True,
        help="Representative run rule: lighthouse (FCP and TTI), or the run "
        "closest to the median of a score or metric (performance, lcp, ...).",
    ),
    click.option(
        "--contention-ratio",
        type=click.FloatRange(0, 1, min_open=True),
        default=0.8,
        show_default=True,
        help="Mark runs whose benchmark index is below this share of the "
        "host's idle figure as contended.",
    ),
    click.option(
        "--calibrate",
        is_flag=True,
        help="Measure the host's idle benchmark index before the job.",
    ),
    click.option(
        "--assert",
        "check_assertions",
        is_flag=True,
        help="Check the config's assertions after the job; exit 1 on an "
        "error-level failure.",
    ),
]


def analysis_options(command: F) -> F:
    """Add the statistics, fidelity and assertion options as one AnalysisOptions."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        names = [field.name for field in dataclasses.fields(AnalysisOptions)]
        values = {name: kwargs.pop(name) for name in names}
        return command(*args, analysis=AnalysisOptions(**values), **kwargs)

    decorated: Any = wrapper
    for option in reversed(ANALYSIS_OPTIONS):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def check_and_print(
    workspace: service.Workspace, job_id: str, config: Config, console: Console
) -> list[Outcome]:
    """Check a job against the config's assertions, print failures, raise on errors."""
    assertions = require_assertions(config)
    outcomes = check_job(workspace.store, workspace.reports, job_id, assertions)
    listed = [o for o in outcomes if assertions.include_passed or not o.passed]
    print_outcomes(console, listed, job_id, assertions.source)
    _raise_on_errors(outcomes, job_id)
    return outcomes


def _raise_on_errors(outcomes: list[Outcome], job_id: str) -> None:
    if has_errors(outcomes):
        count = sum(not o.passed and o.level == "error" for o in outcomes)
        raise AssertionsFailed(
            f"{count} error-level assertions failed for job {job_id}; see the "
            "table above for each URL, value and limit."
        )


def outcome_line(outcome: Outcome) -> str:
    """Return one line for an outcome: level, URL, assertion, value and limit."""
    level = "pass" if outcome.passed else outcome.level
    found = "no value" if outcome.actual is None else f"{outcome.actual:g}"
    line = (
        f"{level:<5} {outcome.url}  {outcome.key} {outcome.check}: found {found}, "
        f"limit {outcome.operator} {outcome.expected:g} ({outcome.aggregation} "
        f"of {len(outcome.values)} runs)"
    )
    return f"{line}. {outcome.message}" if outcome.message else line


def print_outcomes(
    console: Console, outcomes: list[Outcome], job_id: str, source: str
) -> None:
    """Print a heading, then one unwrapped line per outcome."""
    failed = sum(not outcome.passed for outcome in outcomes)
    console.print(
        f"Assertions of job {job_id} from {source}: {failed} failed",
        markup=False,
        highlight=False,
    )
    for outcome in outcomes:
        style = "green" if outcome.passed else {"error": "red"}.get(outcome.level)
        console.print(
            outcome_line(outcome),
            style=style,
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@click.command(name="assert")
@click.argument("job_id")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print every outcome as JSON.")
@data_dir_option
@handle_errors
def assert_(job_id: str, as_json: bool, data_dir: Path | None) -> None:
    """Check a job against assertions (budgets) in Lighthouse CI's format."""
    workspace = open_workspace(data_dir)
    workspace.store.get_job(job_id)
    config = current_config()
    if not as_json:
        check_and_print(workspace, job_id, config, stdout_console)
        return
    assertions = require_assertions(config)
    outcomes = check_job(workspace.store, workspace.reports, job_id, assertions)
    document = {
        "job": job_id,
        "source": assertions.source,
        "failed": sum(not outcome.passed for outcome in outcomes),
        "outcomes": [outcome.to_dict() for outcome in outcomes],
    }
    sys.stdout.write(json.dumps(document, indent=2) + "\n")
    _raise_on_errors(outcomes, job_id)


def _keys(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    parts = text.split(",")
    return tuple(check_key(part.strip(), "--metrics") for part in parts if part.strip())


@click.command()
@click.argument("job_a")
@click.argument("job_b")
@config_option
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "json", "markdown"]),
    default="table",
    show_default=True,
)
@click.option(
    "--confidence",
    type=click.FloatRange(0.5, 1, max_open=True),
    default=DEFAULT_CONFIDENCE,
    show_default=True,
    help="Confidence level of the bootstrap interval.",
)
@click.option(
    "--min-change",
    type=click.FloatRange(0, 1),
    default=DEFAULT_MIN_CHANGE,
    show_default=True,
    help="Smallest change counted, as a share of job A's median.",
)
@click.option("--metrics", default=None, help="Comma-separated keys to compare.")
@data_dir_option
@handle_errors
def compare(
    job_a: str,
    job_b: str,
    output_format: str,
    confidence: float,
    min_change: float,
    metrics: str | None,
    data_dir: Path | None,
) -> None:
    """Compare job B with job A per URL and metric; exit 1 on a regression."""
    workspace = open_workspace(data_dir)
    options = CompareOptions(confidence, min_change, _keys(metrics))
    comparison = compare_jobs(workspace.store, job_a, job_b, options)
    if output_format == "json":
        sys.stdout.write(json.dumps(comparison.to_dict(), indent=2) + "\n")
    elif output_format == "markdown":
        sys.stdout.write(comparison_markdown(comparison))
    else:
        _print_comparison(comparison)
    regressions = comparison.regressions
    if regressions:
        raise RegressionFound(
            f"{len(regressions)} significant regressions of job {job_b} against "
            f"job {job_a}, such as {regressions[0][1].key} on {regressions[0][0]}."
        )


def _print_comparison(comparison: Comparison) -> None:
    for url in comparison.urls:
        table = Table(title=f"{url.url}: {url.verdict}", title_justify="left")
        for name in ("metric", "A", "B", "change", "interval"):
            table.add_column(name, justify="left" if name == "metric" else "right")
        table.add_column("verdict")
        for change in url.metrics:
            low, high = change.interval or (None, None)
            style = {REGRESSED: "red", IMPROVED: "green"}.get(change.verdict)
            table.add_row(
                change.key,
                format_value(change.key, change.median_a),
                format_value(change.key, change.median_b),
                format_change(change.key, change.difference),
                f"{format_change(change.key, low)} to "
                f"{format_change(change.key, high)}",
                change.verdict,
                style=style,
            )
        stdout_console.print(table)
    for label, urls in (("A", comparison.only_in_a), ("B", comparison.only_in_b)):
        for missing in urls:
            stdout_console.print(f"Only in job {label}: {escape(missing)}")
    stdout_console.print(
        f"{len(comparison.regressions)} significant regressions "
        f"({comparison.options.confidence:.0%} bootstrap interval of the "
        "difference of medians)."
    )


@click.command()
@click.argument("job_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("summary.html"),
    show_default=True,
    help="Where to write the HTML summary.",
)
@data_dir_option
@handle_errors
def report(job_id: str, output: Path, data_dir: Path | None) -> None:
    """Write a job's summary: one HTML file with tables, charts and report links."""
    workspace = open_workspace(data_dir)
    document = service.results(workspace, job_id)
    path = write_html(document, output)
    stdout_console.print(f"Wrote {path}")


@click.command()
@click.option(
    "--samples",
    type=click.IntRange(1, 10),
    default=DEFAULT_SAMPLES,
    show_default=True,
    help="Lighthouse runs to measure, one at a time.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the calibration as JSON.")
@data_dir_option
@handle_errors
def calibrate(samples: int, as_json: bool, data_dir: Path | None) -> None:
    """Measure this host's idle benchmark index and keep it in the data directory."""
    workspace = open_workspace(data_dir)
    runtime = find_runtime()
    stderr.print(f"Measuring with {samples} lone Lighthouse runs; keep the host idle.")
    calibration = measure(runtime, workspace.scratch, samples)
    save_calibration(workspace.data_dir, calibration)
    if as_json:
        sys.stdout.write(json.dumps(dataclasses.asdict(calibration), indent=2) + "\n")
        return
    stdout_console.print(
        f"{calibration.host}: idle benchmark index {calibration.benchmark_index:,.0f} "
        f"(samples {', '.join(f'{value:,.0f}' for value in calibration.samples)}); "
        f"saved in {calibration_path(workspace.data_dir)}"
    )
    if calibration.busy:
        stderr.print(
            f"[yellow]The host was {calibration.cpu_percent:.0f}% busy when "
            "measuring[/yellow]; the figure may be low. Run again when it is idle."
        )
