"""The ``lhfleet`` command: a thin edge over the service functions.

Exit status: 0 when every URL has at least one valid run, 1 when some URL
has none, 2 for usage errors (bad options, invalid URLs, unknown job), 3
when Node, Lighthouse or Chromium is missing or broken, 4 when the job
store fails, 5 when the job reached --max-duration, 130 when interrupted
(``lhfleet resume JOB`` goes on).
"""

from __future__ import annotations

import logging
import sys

import click

from lhfleet.cli.analyze import assert_, calibrate, compare, report
from lhfleet.cli.aws import aws
from lhfleet.cli.common import EXIT_HELP
from lhfleet.cli.doctor import doctor
from lhfleet.cli.jobs import prune, resume, retry, run
from lhfleet.cli.read import jobs, results, status
from lhfleet.cli.serve import hooks, serve, submit, token
from lhfleet.cli.worker import worker


@click.group(epilog=EXIT_HELP)
@click.version_option(package_name="lhfleet")
@click.option(
    "-v", "--verbose", count=True, help="Log more on stderr (-v info, -vv debug)."
)
def main(verbose: int) -> None:
    """Run Lighthouse over many URLs, several runs each, and keep every result."""
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setLevel(level)
    root = logging.getLogger("lhfleet")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)


for command in (run, resume, retry, prune, jobs, status, results, doctor):
    main.add_command(command)
main.add_command(aws)
for command in (compare, assert_, report, calibrate):
    main.add_command(command)
main.add_command(worker)
for command in (serve, token, submit, hooks):
    main.add_command(command)
