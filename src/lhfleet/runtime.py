"""Finding the Node, Lighthouse and Chromium that audits run with."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lhfleet.errors import EnvironmentProblem

logger = logging.getLogger(__name__)

MIN_NODE = (22, 19)
LIGHTHOUSE_VERSION = "13.5.0"
CHROME_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent.parent

INSTALL_NODE_MODULES = (
    "Run `npm ci` in the lhfleet checkout (it installs Lighthouse "
    f"{LIGHTHOUSE_VERSION} and Node 22 from the npm registry), or point "
    "LHFLEET_NODE_MODULES at a node_modules folder that has them."
)
INSTALL_CHROME = (
    "Install Chromium (Debian: `apt-get update && apt-get install -y chromium`) "
    "or set CHROME_PATH to a Chrome or Chromium binary."
)


@dataclass(frozen=True)
class Runtime:
    """The programs one audit needs, found once and reused for every run."""

    node: Path
    lighthouse_cli: Path
    report_generator: Path
    chrome: Path


def node_modules_candidates() -> list[Path]:
    """Return the node_modules folders searched for Lighthouse, in order."""
    candidates = []
    if configured := os.environ.get("LHFLEET_NODE_MODULES"):
        candidates.append(Path(configured))
    candidates += [REPO_ROOT / "node_modules", Path.cwd() / "node_modules"]
    return candidates


def find_lighthouse() -> Path:
    """Return the Lighthouse CLI script, or raise with the install command."""
    for folder in node_modules_candidates():
        cli = folder / "lighthouse" / "cli" / "index.js"
        if cli.is_file():
            return cli
    searched = ", ".join(str(path) for path in node_modules_candidates())
    raise EnvironmentProblem(
        f"Lighthouse is not installed (searched {searched}). {INSTALL_NODE_MODULES}"
    )


def find_node(lighthouse_cli: Path) -> Path:
    """Return a Node new enough for Lighthouse: the pinned one, else the system's."""
    node_modules = lighthouse_cli.parents[2]
    pinned = [node_modules / ".bin" / "node"]
    pinned += sorted(node_modules.glob("node-linux-*/bin/node"))
    for candidate in [*pinned, shutil.which("node")]:
        if candidate is None or not Path(candidate).is_file():
            continue
        version = node_version(Path(candidate))
        if version is not None and version >= MIN_NODE:
            return Path(candidate)
    wanted = ".".join(map(str, MIN_NODE))
    raise EnvironmentProblem(
        f"No Node {wanted} or newer found: Lighthouse {LIGHTHOUSE_VERSION} needs it. "
        f"{INSTALL_NODE_MODULES}"
    )


def node_version(node: Path) -> tuple[int, int] | None:
    """Return the (major, minor) version of a Node binary, or None if it fails."""
    output = _version_output([str(node), "--version"])
    match = re.match(r"v(\d+)\.(\d+)", output or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def find_chrome() -> Path:
    """Return CHROME_PATH if set, else the first Chromium or Chrome on PATH."""
    configured = os.environ.get("CHROME_PATH")
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EnvironmentProblem(
                f"CHROME_PATH is {configured!r}, which is not an executable file. "
                f"Fix or unset CHROME_PATH. {INSTALL_CHROME}"
            )
        return path
    for name in CHROME_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise EnvironmentProblem(
        f"No Chromium or Chrome found on PATH (looked for {', '.join(CHROME_NAMES)}). "
        f"{INSTALL_CHROME}"
    )


def chrome_version(chrome: Path) -> str:
    """Return Chrome's version line, or raise when the binary does not start."""
    output = _version_output([str(chrome), "--version"])
    if output is None:
        raise EnvironmentProblem(
            f"{chrome} did not start (`{chrome} --version` failed). A missing "
            f"shared library or a wrong binary is the usual cause. {INSTALL_CHROME}"
        )
    return output


def find_runtime() -> Runtime:
    """Find every program an audit needs, or raise naming the first missing one."""
    cli = find_lighthouse()
    node = find_node(cli)
    generator = cli.parents[1] / "report" / "generator" / "report-generator.js"
    chrome = find_chrome()
    chrome_version(chrome)
    logger.debug("runtime: node %s, lighthouse %s, chrome %s", node, cli, chrome)
    return Runtime(
        node=node, lighthouse_cli=cli, report_generator=generator, chrome=chrome
    )


def lighthouse_version(cli: Path) -> str | None:
    """Return the version in the Lighthouse package's package.json."""
    package = cli.parents[1] / "package.json"
    match = re.search(r'"version"\s*:\s*"([^"]+)"', _read(package))
    return match.group(1) if match else None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def _version_output(command: list[str]) -> str | None:
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        logger.debug("%s failed: %s", command[0], error)
        return None
    if completed.returncode != 0:
        logger.debug(
            "%s exited %d: %s", command[0], completed.returncode, completed.stderr
        )
        return None
    return completed.stdout.strip()
