"""Run the CLI with ``python -m lhfleet.cli``."""

from lhfleet.cli import main

main()
