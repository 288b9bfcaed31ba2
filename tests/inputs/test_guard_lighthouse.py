"""The guard against a real browser: pages on loopback reach into a blocked range.

The page on 127.0.0.1 is the public site, because the policy allows it. It
redirects to, or loads an image from, 127.0.0.2: a loopback address that the
policy does not allow, where the test serves what must not be reached.
Resumed and retried jobs must audit through a guard proxy of their own.
"""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from lhfleet.guard import GuardPolicy, check_report
from tests.inputs.conftest import Page, Site

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


def page_with_blocked_image(blocked: Site) -> bytes:
    """Return a small page that loads an image from a blocked address."""
    return (
        "<!doctype html><html lang=en><title>Guarded page</title><body>"
        "<h1>Guarded page</h1><p>Its image is on an address the guard blocks.</p>"
        f'<img src="{blocked.url("/pixel.png")}" alt="" width="8" height="8">'
        "</body></html>"
    ).encode()


def lhfleet(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Run an lhfleet command on ``data_dir`` to its end."""
    command = [*LHFLEET, *arguments, "--data-dir", str(data_dir)]
    return subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=240
    )


def only_job_id(data_dir: Path) -> str:
    listed = json.loads(lhfleet(data_dir, "jobs", "--json").stdout)
    (job,) = listed
    return str(job["id"])


def assert_guarded_success(document: dict[str, Any], blocked: Site) -> None:
    """Check a job's one run succeeded and its page never reached ``blocked``."""
    (url,) = document["urls"]
    (run,) = url["runs"]
    assert run["state"] == "succeeded", run["error_message"]
    assert blocked.hits == []
    settings = document["job"]["settings"]
    assert settings["guard"] is True
    assert settings["allowed_networks"] == ["127.0.0.1/32"]
    assert not [f for f in settings["chrome_flags"] if f.startswith("--proxy")]


@pytest.mark.lighthouse
def test_interrupted_guarded_job_resumes(
    site: Site, other_site: Site, tmp_path: Path
) -> None:
    hold = threading.Event()
    body = page_with_blocked_image(other_site)
    site.pages["/"] = Page(body, hold=hold)

    command = [
        *LHFLEET,
        *("run", site.url("/"), "--allow-target", "127.0.0.1/32"),
        *("--runs", "1", "--retries", "0", "--categories", "performance"),
        *("--concurrency", "1", "--data-dir", str(tmp_path)),
    ]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 180
        while "/" not in site.hits and process.poll() is None:
            assert time.monotonic() < deadline, "the audit never requested the page"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr

    site.pages["/"] = Page(body)
    hold.set()
    resumed = lhfleet(tmp_path, "resume", only_job_id(tmp_path), "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert site.hits.count("/") == 2
    assert_guarded_success(json.loads(resumed.stdout), other_site)


@pytest.mark.lighthouse
def test_retried_guarded_job_audits_again(
    site: Site, other_site: Site, tmp_path: Path
) -> None:
    body = page_with_blocked_image(other_site)
    site.pages["/"] = Page(body, status=500)
    failed = audit(site.url("/"), tmp_path, "--allow-target", "127.0.0.1/32")
    assert failed.returncode == 1, failed.stderr
    (url,) = json.loads(failed.stdout)["urls"]
    assert url["runs"][0]["state"] == "failed"

    site.pages["/"] = Page(body)
    retried = lhfleet(tmp_path, "retry", only_job_id(tmp_path), "--json")
    assert retried.returncode == 0, retried.stderr
    assert site.hits.count("/") == 2
    assert_guarded_success(json.loads(retried.stdout), other_site)
