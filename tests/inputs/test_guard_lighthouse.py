"""The guard against a real browser: a page on loopback redirects into a blocked range.

The page on 127.0.0.1 is the public site, because the policy allows it. It
responds with a redirect to 127.0.0.2, a loopback address that the policy
does not allow, where the test serves the page that must not be reached.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lhfleet.guard import GuardPolicy, check_report
from tests.inputs.conftest import Site

POLICY = GuardPolicy.from_cidrs(["127.0.0.1/32"])
LHFLEET = [sys.executable, "-m", "lhfleet"]


def audit(url: str, data_dir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run one small audit of ``url`` with lhfleet run, in a subprocess."""
    command = [
        *LHFLEET,
        "run",
        url,
        "--runs",
        "1",
        "--retries",
        "0",
        "--categories",
        "performance",
        "--concurrency",
        "1",
        "--data-dir",
        str(data_dir),
        "--json",
        *options,
    ]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=240
    )


def stored_report(data_dir: Path) -> dict[str, Any]:
    (path,) = data_dir.glob("reports/*/*.report.json.gz")
    report: dict[str, Any] = json.loads(gzip.decompress(path.read_bytes()))
    return report


@pytest.fixture
def redirecting(site: Site, other_site: Site) -> Site:
    site.redirect("/", other_site.url("/secret"))
    other_site.html("/secret")
    return site


@pytest.mark.lighthouse
def test_guarded_browser_does_not_follow_redirect(
    redirecting: Site, other_site: Site, tmp_path: Path
) -> None:
    completed = audit(redirecting.url("/"), tmp_path, "--allow-target", "127.0.0.1/32")
    assert completed.returncode == 1, completed.stderr
    assert "/" in redirecting.hits
    assert other_site.hits == []
    document = json.loads(completed.stdout)
    (url,) = document["urls"]
    assert url["runs"][0]["error_code"] == "ERRORED_DOCUMENT_REQUEST"


@pytest.mark.lighthouse
def test_report_check_finds_unguarded_redirect(
    redirecting: Site, other_site: Site, tmp_path: Path
) -> None:
    completed = audit(redirecting.url("/"), tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "/secret" in other_site.hits
    found = check_report(stored_report(tmp_path), POLICY)
    assert [(rejected.rule, rejected.address) for rejected in found] == [
        ("loopback", "127.0.0.2")
    ]
