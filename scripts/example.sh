#!/usr/bin/env bash
# Sets up what is missing, serves the example site on loopback and runs a real
# lhfleet job on it (3 runs of each page). Results go to ./.lhfleet.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >/dev/null

urls=$(mktemp)
.venv/bin/python examples/serve.py examples/site --port 0 --print-urls "$urls" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -f "$urls"' EXIT
for _ in $(seq 50); do [ -s "$urls" ] && break; sleep 0.1; done

.venv/bin/lhfleet run -i "$urls" "$@"
