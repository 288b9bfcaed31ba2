#!/usr/bin/env bash
# Installs the tools bench/concurrency.py compares lhfleet with, beside the
# project: Lighthouse CI's CLI (@lhci/cli 0.14.0) and lighthouse-batch, each
# with the Lighthouse version it depends on, in bench/.others.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p .others
cd .others
[ -f package.json ] || echo '{"name": "lhfleet-bench-others", "private": true}' > package.json
npm install --no-audit --no-fund --loglevel=error @lhci/cli@0.14.0 lighthouse-batch
npm ls --depth=1 @lhci/cli lighthouse-batch lighthouse || true
