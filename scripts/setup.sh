#!/usr/bin/env bash
# Installs what lhfleet needs and is missing: a virtualenv with lhfleet and its
# development tools, the pinned Lighthouse and Node 22 (npm ci), and Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "lhfleet needs Python 3.11 or newer; $python is $("$python" --version 2>&1)." >&2
  exit 3
fi

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
stamp=.venv/.lhfleet-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  touch "$stamp"
fi

if ! command -v npm >/dev/null; then
  echo "npm is missing: install Node.js and npm (Debian: apt-get install -y nodejs npm)." >&2
  exit 3
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

if [ -z "${CHROME_PATH:-}" ] && ! command -v chromium >/dev/null && ! command -v google-chrome >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is missing: run 'sudo apt-get install -y chromium' or set CHROME_PATH." >&2
    exit 3
  fi
fi

.venv/bin/lhfleet doctor
