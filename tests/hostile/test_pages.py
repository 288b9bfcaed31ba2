"""Hostile pages cost their own runs and never the batch, with real Lighthouse.

Every job runs once, in the background, from the ``fleet`` fixture; each test
reads one URL's entry in a job's results document (``lhfleet run --json``).
"""

from __future__ import annotations

from typing import Any

import pytest

from lhfleet.node_runner import WINDOW_HOLD_LIMIT
from tests.hostile.conftest import (
    GOOD_PATHS,
    SECURE_PATH,
    UNREACHABLE_TIMEOUT,
    Finished,
    Fleet,
    audit_processes,
    leftover_work_dirs,
    lighthouse_profiles,
)
from tests.hostile.server import HostileSite

pytestmark = pytest.mark.lighthouse

HUNG_PAGE_CODES = {"RUN_TIMEOUT", "PAGE_HUNG", "PROTOCOL_TIMEOUT", "NO_FCP"}


@pytest.fixture(scope="module")
def mixed(fleet: Fleet) -> Finished:
    return fleet.result("mixed")


def warning_codes(run: dict[str, Any]) -> list[str]:
    return [warning["code"] for warning in run["warnings"]]


def measured(run: dict[str, Any]) -> list[str]:
    """Return the metrics a run has a value for (a TBT of 0 counts)."""
    return sorted(key for key, value in run["metrics"].items() if value is not None)


@pytest.mark.parametrize("name", ["mixed", "statuses", "unreachable"])
def test_job_with_failures_exits_1(fleet: Fleet, name: str) -> None:
    assert fleet.result(name).exit_code == 1


@pytest.mark.parametrize("name", ["clean", "desktop", "blank"])
def test_job_with_valid_runs_exits_0(fleet: Fleet, name: str) -> None:
    assert fleet.result(name).exit_code == 0


@pytest.mark.parametrize(
    "name", ["mixed", "statuses", "blank", "unreachable", "desktop", "clean"]
)
def test_job_settles_every_run(fleet: Fleet, name: str) -> None:
    job = fleet.result(name).document["job"]
    assert job["state"] == "completed"
    assert job["counts"]["pending"] == 0


@pytest.mark.parametrize(
    "name", ["mixed", "statuses", "blank", "unreachable", "desktop", "clean"]
)
def test_job_leaves_nothing_behind(fleet: Fleet, name: str) -> None:
    outcome = fleet.outcome(name)
    processes = audit_processes(outcome.data_dir, outcome.temp_dirs)
    assert [process.info["cmdline"] for process in processes] == []
    assert leftover_work_dirs(outcome.data_dir) == []
    assert lighthouse_profiles(outcome.temp_dirs) == []
    assert [temp for temp in outcome.temp_dirs if temp.exists()] == []


def test_job_saw_audit_temp_dirs(fleet: Fleet) -> None:
    """Guards the leftover checks: they must have had folders to look for."""
    assert fleet.outcome("mixed").temp_dirs


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_good_page_valid_in_mixed_job(
    mixed: Finished, site: HostileSite, path: str
) -> None:
    entry = mixed.entry(site.url(path))
    assert entry["valid_runs"] == entry["total_runs"]
    assert entry["representative_run"] == entry["runs"][0]["id"]
    assert entry["runs"][0]["scores"]["performance"] is not None


@pytest.mark.parametrize("path", GOOD_PATHS)
def test_good_page_same_as_clean_job(
    fleet: Fleet, mixed: Finished, site: HostileSite, path: str
) -> None:
    """Metric values vary from run to run, so the shape is compared, not numbers."""
    in_mixed = mixed.entry(site.url(path))
    alone = fleet.result("clean").entry(site.url(path))
    assert in_mixed["valid_runs"] == alone["valid_runs"]
    assert in_mixed["total_runs"] == alone["total_runs"]
    assert sorted(in_mixed["median"]) == sorted(alone["median"])
    mixed_run, alone_run = in_mixed["runs"][0], alone["runs"][0]
    assert sorted(mixed_run["scores"]) == sorted(alone_run["scores"])
    assert measured(mixed_run) == measured(alone_run)


def test_narrow_loop_fails_one_run(mixed: Finished, site: HostileSite) -> None:
    run = mixed.run(site.url("/narrow-loop.html"))
    assert run["state"] == "failed"
    assert run["error_code"] in HUNG_PAGE_CODES


def test_narrow_loop_passes_on_desktop(fleet: Fleet, site: HostileSite) -> None:
    run = fleet.result("desktop").run(site.url("/narrow-loop.html"))
    assert run["state"] == "succeeded"


def test_stalled_subresource_warns(mixed: Finished, site: HostileSite) -> None:
    run = mixed.run(site.url("/stalled.html"))
    assert run["state"] == "succeeded"
    assert "PAGE_LOADED_TOO_SLOWLY" in warning_codes(run)


def test_blank_page_has_no_fcp_run(fleet: Fleet, site: HostileSite) -> None:
    entry = fleet.result("blank").entry(site.url("/blank-alternate.html"))
    codes = [run["error_code"] for run in entry["runs"]]
    assert codes.count("NO_FCP") == 1
    assert entry["valid_runs"] == 1


def test_blank_page_keeps_representative(fleet: Fleet, site: HostileSite) -> None:
    entry = fleet.result("blank").entry(site.url("/blank-alternate.html"))
    valid = [run["id"] for run in entry["runs"] if run["state"] == "succeeded"]
    assert entry["representative_run"] == valid[0]


def test_redirect_to_other_host_warns(mixed: Finished, site: HostileSite) -> None:
    run = mixed.run(site.url("/redirect-other-host"))
    assert run["state"] == "succeeded"
    assert run["final_url"].startswith(site.origin(site.other))
    assert "REDIRECTED_TO_OTHER_HOST" in warning_codes(run)


def test_redirect_loop_fails(mixed: Finished, site: HostileSite) -> None:
    run = mixed.run(site.url("/redirect-loop"))
    assert run["state"] == "failed"
    assert run["error_code"] == "CHROME_INTERSTITIAL_ERROR"


@pytest.mark.parametrize("path", ["/redirect-loop", SECURE_PATH])
def test_error_page_not_other_host(
    mixed: Finished, site: HostileSite, path: str
) -> None:
    url = site.secure_url(path) if path == SECURE_PATH else site.url(path)
    run = mixed.run(url)
    assert "REDIRECTED_TO_OTHER_HOST" not in warning_codes(run)


@pytest.mark.parametrize(
    ("path", "status"),
    [("/status-404", 404), ("/status-500", 500), ("/status-503", 503)],
)
def test_status_fails_with_status(
    fleet: Fleet, site: HostileSite, path: str, status: int
) -> None:
    run = fleet.result("statuses").run(site.url(path))
    assert run["error_code"] == "ERRORED_DOCUMENT_REQUEST"
    assert run["error_message"].endswith(f"(Status code: {status})")


@pytest.mark.parametrize(
    ("path", "attempts"), [("/status-404", 1), ("/status-500", 2), ("/status-503", 2)]
)
def test_status_attempts(
    fleet: Fleet, site: HostileSite, path: str, attempts: int
) -> None:
    """A 404 is permanent; a 500 and a 503 are worth the one retry allowed."""
    run = fleet.result("statuses").run(site.url(path))
    assert run["attempts"] == attempts


@pytest.mark.parametrize(
    ("path", "mime"),
    [
        ("/doc.pdf", "application/pdf"),
        ("/data.json", "application/json"),
        ("/pixel.png", "image/png"),
    ],
)
def test_non_html_fails_not_html(
    mixed: Finished, site: HostileSite, path: str, mime: str
) -> None:
    run = mixed.run(site.url(path))
    assert run["error_code"] == "NOT_HTML"
    assert mime in run["error_message"]


def test_missing_content_type_sniffed(mixed: Finished, site: HostileSite) -> None:
    run = mixed.run(site.url("/no-content-type.html"))
    assert run["state"] == "succeeded"


def test_self_signed_fails_insecure(mixed: Finished, site: HostileSite) -> None:
    run = mixed.run(site.secure_url(SECURE_PATH))
    assert run["error_code"] == "INSECURE_DOCUMENT_REQUEST"
    assert "ERR_CERT_AUTHORITY_INVALID" in run["error_message"]


def test_self_signed_passes_with_flag(fleet: Fleet, site: HostileSite) -> None:
    run = fleet.result("desktop").run(site.secure_url(SECURE_PATH))
    assert run["state"] == "succeeded"


@pytest.mark.parametrize(("job", "flag"), [("desktop", True), ("mixed", False)])
def test_certificate_flag_recorded(fleet: Fleet, job: str, flag: bool) -> None:
    settings = fleet.result(job).document["job"]["settings"]
    assert settings["ignore_certificate_errors"] is flag


@pytest.mark.parametrize("kind", ["alert", "confirm"])
def test_dialog_reported_as_warning(
    mixed: Finished, site: HostileSite, kind: str
) -> None:
    run = mixed.run(site.url("/dialogs.html"))
    dialogs = [
        w["message"] for w in run["warnings"] if w["code"] == "JAVASCRIPT_DIALOG"
    ]
    assert any(f" {kind} dialog" in message for message in dialogs)


def test_dialog_page_succeeds(mixed: Finished, site: HostileSite) -> None:
    """The beforeunload handler must not hold the run: Chrome skips the prompt
    without a user gesture, and Lighthouse accepts any dialog that opens."""
    run = mixed.run(site.url("/dialogs.html"))
    assert run["state"] == "succeeded"


def test_closed_port_fails_at_once(fleet: Fleet, site: HostileSite) -> None:
    run = fleet.result("unreachable").run(site.closed_url)
    assert run["error_code"] == "CHROME_INTERSTITIAL_ERROR"
    assert run["attempts"] == 1


def test_silent_port_times_out(fleet: Fleet, site: HostileSite) -> None:
    run = fleet.result("unreachable").run(site.silent_url)
    assert run["error_code"] == "RUN_TIMEOUT"
    assert run["attempts"] == 2


def test_unreachable_job_ends_promptly(fleet: Fleet) -> None:
    """Two attempts at most, a backoff of about 2 s, and start-up time.

    Each attempt may first wait for another job's run to give back the
    measurement window, which holds it for at most WINDOW_HOLD_LIMIT.
    """
    waits = 2 * WINDOW_HOLD_LIMIT
    assert fleet.result("unreachable").seconds < UNREACHABLE_TIMEOUT * 2 + 45 + waits
