"""A Chrome that dies mid-run costs one attempt, and one that never starts one error."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import time
from pathlib import Path

import psutil
import pytest

from tests.hostile.conftest import (
    Finished,
    audit_processes,
    finish,
    leftover_work_dirs,
    lhfleet_env,
    run_lhfleet,
    start,
    wait_for_chromes,
)
from tests.hostile.server import HostileSite

pytestmark = pytest.mark.lighthouse

FAKE_CHROME = """#!/bin/sh
# Prints a version line for --version like Chromium, then fails to start.
if [ "$1" = "--version" ]; then echo "Chromium 1.0 fake"; exit 0; fi
echo "fake Chromium: cannot open display" >&2
exit 1
"""


@pytest.fixture(scope="module")
def chrome_killed(
    site: HostileSite, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Finished, Path, set[Path]]:
    """Kill the browser of the first attempt while its page is still loading.

    The kill waits for the page's request, so Lighthouse has connected to
    Chrome by then. A Chrome that dies before that is the start-up case below.
    """
    data_dir = tmp_path_factory.mktemp("chrome-killed")
    path = "/slow-once/chrome-killed"
    url = site.url(path)
    started = time.monotonic()
    process = start(
        data_dir,
        *("run", url, "--runs", "1", "--retries", "1", "--timeout", "90"),
        *("--categories", "performance", "--concurrency", "1", "--json"),
    )
    browsers, temps = wait_for_chromes(data_dir, 1)
    while site.hits.get(path) == 0 and process.poll() is None:
        time.sleep(0.2)
    for browser in browsers:
        # A browser can exit between the listing and the kill.
        with contextlib.suppress(psutil.NoSuchProcess):
            browser.send_signal(signal.SIGKILL)
    return finish(process, started), data_dir, temps


def test_chrome_killed_run_retried(
    chrome_killed: tuple[Finished, Path, set[Path]], site: HostileSite
) -> None:
    finished, _, _ = chrome_killed
    run = finished.run(site.url("/slow-once/chrome-killed"))
    assert run["state"] == "succeeded"
    assert run["attempts"] == 2


def test_chrome_killed_job_exits_0(
    chrome_killed: tuple[Finished, Path, set[Path]],
) -> None:
    finished, _, _ = chrome_killed
    assert finished.exit_code == 0


def test_chrome_killed_logged_as_crash(
    chrome_killed: tuple[Finished, Path, set[Path]],
) -> None:
    _, data_dir, _ = chrome_killed
    log = (data_dir / "lhfleet.log").read_text(encoding="utf-8")
    assert "attempt 1 failed with CHROME_CRASHED" in log


def test_chrome_killed_leaves_nothing(
    chrome_killed: tuple[Finished, Path, set[Path]],
) -> None:
    _, data_dir, temps = chrome_killed
    assert audit_processes(data_dir, temps) == []
    assert leftover_work_dirs(data_dir) == []
    assert [temp for temp in temps if temp.exists()] == []


def job_list(data_dir: Path) -> list[dict[str, object]]:
    finished = run_lhfleet(data_dir, "jobs", "--json")
    jobs: list[dict[str, object]] = json.loads(finished.stdout)
    return jobs


@pytest.fixture(scope="module")
def missing_chrome(
    site: HostileSite, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Finished, Path]:
    """Run three URLs with a CHROME_PATH that does not exist."""
    folder = tmp_path_factory.mktemp("missing-chrome")
    env = lhfleet_env(CHROME_PATH=str(folder / "no-such-chrome"))
    urls = [site.url(f"/good/never-{index}.html") for index in range(3)]
    finished = run_lhfleet(folder / "data", "run", *urls, env=env)
    return finished, folder / "data"


def test_missing_chrome_path_exits_3(missing_chrome: tuple[Finished, Path]) -> None:
    finished, _ = missing_chrome
    assert finished.exit_code == 3
    assert "CHROME_PATH" in finished.stderr
    assert finished.stderr.count("Error:") == 1


def test_missing_chrome_path_queues_nothing(
    missing_chrome: tuple[Finished, Path],
) -> None:
    _, data_dir = missing_chrome
    assert job_list(data_dir) == []


@pytest.fixture(scope="module")
def broken_chrome(
    site: HostileSite, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Finished, Path]:
    """Run three URLs with a CHROME_PATH that passes --version and never launches."""
    folder = tmp_path_factory.mktemp("broken-chrome")
    fake = folder / "chromium"
    fake.write_text(FAKE_CHROME, encoding="utf-8")
    fake.chmod(0o755)
    data_dir = folder / "data"
    urls = [site.url(f"/good/broken-{index}.html") for index in range(3)]
    finished = run_lhfleet(
        data_dir,
        *("run", *urls, "--retries", "2", "--runs", "2"),
        *("--categories", "performance", "--concurrency", "2"),
        env=lhfleet_env(CHROME_PATH=str(fake)),
    )
    return finished, data_dir


def test_broken_chrome_exits_3(broken_chrome: tuple[Finished, Path]) -> None:
    finished, _ = broken_chrome
    assert finished.exit_code == 3
    assert finished.stderr.count("Error:") == 1
    assert "Chrome failed to launch" in finished.stderr


def test_broken_chrome_fails_no_run(broken_chrome: tuple[Finished, Path]) -> None:
    _, data_dir = broken_chrome
    [job] = job_list(data_dir)
    assert job["counts"] == {"total": 6, "succeeded": 0, "failed": 0, "pending": 6}


FLAKY_CHROME = """#!/bin/sh
# Dies at its first launch as a browser, as a Chrome killed during start-up
# would, and runs the real Chromium after that.
if [ "$1" != "--version" ] && [ ! -e "{marker}" ]; then
  touch "{marker}"
  exit 1
fi
exec "{chrome}" "$@"
"""


@pytest.fixture(scope="module")
def chrome_died_at_start(
    site: HostileSite, tmp_path_factory: pytest.TempPathFactory
) -> Finished:
    folder = tmp_path_factory.mktemp("chrome-died-at-start")
    real_chrome = shutil.which("chromium") or shutil.which("google-chrome")
    assert real_chrome is not None
    flaky = folder / "chromium"
    marker = folder / "launched-once"
    flaky.write_text(
        FLAKY_CHROME.format(marker=marker, chrome=real_chrome), encoding="utf-8"
    )
    flaky.chmod(0o755)
    return run_lhfleet(
        folder / "data",
        *("run", site.url("/good/died-at-start.html"), "--json"),
        *("--runs", "1", "--retries", "1", "--timeout", "90"),
        *("--categories", "performance", "--concurrency", "1"),
        env=lhfleet_env(CHROME_PATH=str(flaky)),
    )


def test_chrome_start_death_exits_0(chrome_died_at_start: Finished) -> None:
    assert chrome_died_at_start.exit_code == 0


def test_chrome_start_death_retried(
    chrome_died_at_start: Finished, site: HostileSite
) -> None:
    run = chrome_died_at_start.run(site.url("/good/died-at-start.html"))
    assert run["attempts"] == 2
