"""The doctor command."""

from __future__ import annotations

import json
import logging
import sys

import click

from lhfleet.cli.common import (
    handle_errors,
    stdout,
)
from lhfleet.doctor import doctor_checks

logger = logging.getLogger(__name__)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@handle_errors
def doctor(as_json: bool) -> None:
    """Check Python, Node, Lighthouse and Chromium; say how to fix what is missing."""
    checks = doctor_checks()
    if as_json:
        sys.stdout.write(
            json.dumps([check.__dict__ for check in checks], indent=2) + "\n"
        )
    else:
        for check in checks:
            mark = "[green]ok[/green]  " if check.ok else "[red]FAIL[/red]"
            stdout.print(f"{mark} {check.name}: {check.detail}", highlight=False)
            if not check.ok and check.fix:
                stdout.print(f"       fix: {check.fix}", highlight=False)
    if not all(check.ok for check in checks):
        sys.exit(3)
