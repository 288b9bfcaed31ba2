"""``lhfleet doctor``: is everything an audit needs here, and how to fix what is not."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from lhfleet import runtime
from lhfleet.errors import EnvironmentProblem


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def doctor_checks() -> list[Check]:
    """Return one check each for Python, Lighthouse, Node and Chromium."""
    checks = [_python()]
    try:
        cli = runtime.find_lighthouse()
    except EnvironmentProblem as error:
        checks.append(
            Check("lighthouse", False, str(error), runtime.INSTALL_NODE_MODULES)
        )
        checks.append(
            Check(
                "node",
                False,
                "not checked: Lighthouse is missing",
                runtime.INSTALL_NODE_MODULES,
            )
        )
    else:
        checks.append(_lighthouse(cli))
        checks.append(_node(cli))
    checks.append(_chrome())
    return checks


def _python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    ok = sys.version_info >= (3, 11)
    return Check(
        "python",
        ok,
        f"{version} at {sys.executable}",
        "" if ok else "Install Python 3.11 or newer.",
    )


def _lighthouse(cli: Path) -> Check:
    version = runtime.lighthouse_version(cli)
    ok = version == runtime.LIGHTHOUSE_VERSION
    detail = f"{version} at {cli}"
    if not ok:
        detail += f" (lhfleet pins {runtime.LIGHTHOUSE_VERSION})"
    return Check("lighthouse", ok, detail, "" if ok else runtime.INSTALL_NODE_MODULES)


def _node(cli: Path) -> Check:
    try:
        node = runtime.find_node(cli)
    except EnvironmentProblem as error:
        return Check("node", False, str(error), runtime.INSTALL_NODE_MODULES)
    version = runtime.node_version(node)
    shown = ".".join(map(str, version)) if version else "unknown"
    return Check("node", True, f"{shown} at {node}")


def _chrome() -> Check:
    try:
        chrome = runtime.find_chrome()
        version = runtime.chrome_version(chrome)
    except EnvironmentProblem as error:
        return Check("chromium", False, str(error), runtime.INSTALL_CHROME)
    return Check("chromium", True, f"{version} at {chrome}")
