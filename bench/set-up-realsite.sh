#!/usr/bin/env bash
# Installs the site that bench/realsite.py audits: the HTML documentation of
# Python 3.11 from Debian's python3.11-doc package, in /usr/share/doc/python3.11/html.
# Does nothing when the package is already installed. Needs root (or sudo) and apt.
set -euo pipefail

package=python3.11-doc
docs=/usr/share/doc/python3.11/html

if dpkg-query --show --showformat='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
  echo "$package is installed: $docs"
  exit 0
fi

if ! command -v apt-get >/dev/null; then
  echo "apt-get was not found. Install $package with this system's package manager," >&2
  echo "or pass another copy of the Python 3.11 HTML documentation to bench/realsite.py --docs." >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo=sudo
fi
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
echo "Installed $package: $docs"
