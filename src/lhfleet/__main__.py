"""Run the CLI with ``python -m lhfleet``."""

from lhfleet.cli import main

main()
