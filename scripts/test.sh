#!/usr/bin/env bash
# Sets up what is missing, checks style and types, and runs the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not lighthouse".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check src tests examples bench
.venv/bin/ruff format --check src tests examples bench
.venv/bin/mypy
.venv/bin/pytest "$@"
