"""Pieces every command shares: consoles, error handling, common options."""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from lhfleet import engines, service
from lhfleet.console import OutputConsole
from lhfleet.dispatch.local import Concurrency
from lhfleet.errors import (
    InvalidSettingError,
    LhfleetError,
)

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_HELP = """
\b
Exit status:
  0    every URL has at least one valid run
  1    some URL has no valid run
  2    usage error: a bad option, an invalid URL, an unknown job
  3    Node, Lighthouse or Chromium is missing or does not start
  4    the job store or report folder failed (for example, a full disk)
  5    the job reached --max-duration; its unfinished runs failed
  130  interrupted; `lhfleet resume JOB` finishes the job
"""

stderr = OutputConsole(stderr=True)
# Piped output is read by scripts and people alike; a wide fixed width keeps
# ids and URLs whole where no terminal sets the width.
stdout = OutputConsole(soft_wrap=True, width=None if sys.stdout.isatty() else 200)


def data_dir_option(command: F) -> F:
    return click.option(
        "--data-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Folder for the job store and reports "
        "[default: $LHFLEET_HOME or ./.lhfleet].",
    )(command)


def handle_errors(command: F) -> F:
    """Turn lhfleet's errors into a message on stderr and their exit status."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LhfleetError as error:
            with contextlib.suppress(OSError):
                stderr.print(f"[red]Error:[/red] {error}", highlight=False, markup=True)
            sys.exit(error.exit_code)

    return wrapper  # type: ignore[return-value]


def open_workspace(
    data_dir: Path | None, spec: engines.EngineSpec | None = None
) -> service.Workspace:
    """Open the job and report stores that the options and LHFLEET_* name."""
    spec = spec or engines.EngineSpec.resolve(data_dir=data_dir)
    workspace = engines.open_workspace(spec)
    _log_to_file(workspace.data_dir / "lhfleet.log")
    return workspace


def _log_to_file(path: Path) -> None:
    root = logging.getLogger("lhfleet")
    if any(isinstance(h, logging.FileHandler) for h in root.handlers):
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(logging.INFO)
    root.addHandler(handler)


def parse_concurrency(value: str) -> Concurrency:
    """Return "auto" or the whole number of audits at once that ``value`` names."""
    if value == "auto":
        return "auto"
    if value.isdigit() and 1 <= int(value) <= 64:
        return int(value)
    raise InvalidSettingError(
        f"--concurrency is {value!r}; use auto or a whole number from 1 to 64."
    )


def fixed_slots(value: Concurrency) -> int:
    """Return a whole number of slots, for engines without auto concurrency.

    ``lhfleet serve`` and ``lhfleet worker`` take auto as one audit per two
    cores.
    """
    return service.auto_concurrency() if value == "auto" else value


@dataclass(frozen=True)
class DriveOptions:
    """Options of every command that runs a job's runs here."""

    slots: Concurrency
    max_duration: float | None
    as_json: bool
    data_dir: Path | None


def drive_options(command: F) -> F:
    """Add --concurrency, --max-duration, --json and --data-dir as one DriveOptions."""

    @functools.wraps(command)
    def wrapper(
        *args: Any,
        concurrency: str,
        max_duration: float | None,
        as_json: bool,
        data_dir: Path | None,
        **kwargs: Any,
    ) -> Any:
        if max_duration is not None and max_duration <= 0:
            raise click.BadParameter(
                "use a number of seconds above 0", param_hint="--max-duration"
            )
        drive = DriveOptions(
            parse_concurrency(concurrency), max_duration, as_json, data_dir
        )
        return command(*args, drive=drive, **kwargs)

    options = [
        click.option(
            "--concurrency",
            default="auto",
            show_default=True,
            help="Audits at once: a number, or auto (adjusted while the job runs "
            "so that measurements stay undisturbed; up to cores + 1).",
        ),
        click.option(
            "--max-duration",
            type=float,
            default=None,
            help="Seconds the whole job may take; then its unfinished runs fail "
            "and lhfleet exits with 5.",
        ),
        click.option(
            "--json",
            "as_json",
            is_flag=True,
            help="Print the results document as JSON on stdout at the end.",
        ),
        data_dir_option,
    ]
    decorated: Any = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """Return the seconds in an age such as 30d, 12h, 90m or 45s."""
    unit = AGE_UNITS.get(text[-1:].lower())
    number = text[:-1]
    if unit is None or not number.replace(".", "", 1).isdigit():
        raise InvalidSettingError(
            f"--older-than is {text!r}; write a number and a unit (s, m, h, d, w), "
            "such as 30d."
        )
    return float(number) * unit
