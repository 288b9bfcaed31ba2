"""Which failures are retried, read from codes and the status in the message."""

from __future__ import annotations

import pytest

from lhfleet import codes

STATUS_MESSAGE = (
    "Lighthouse was unable to reliably load the page you requested. Make sure "
    "you are testing the correct URL and that the server is properly responding "
    "to all requests. (Status code: {status})"
)


@pytest.mark.parametrize(
    ("code", "message", "transient"),
    [
        ("PROTOCOL_TIMEOUT", None, True),
        ("TARGET_CRASHED", None, True),
        (codes.RUN_TIMEOUT, None, True),
        (codes.CHROME_CRASHED, None, True),
        ("NOT_HTML", None, False),
        ("NO_FCP", None, False),
        ("DNS_FAILURE", None, False),
        (codes.CHROME_LAUNCH_FAILED, None, True),
        ("ERRORED_DOCUMENT_REQUEST", STATUS_MESSAGE.format(status=503), True),
        ("ERRORED_DOCUMENT_REQUEST", STATUS_MESSAGE.format(status=429), True),
        ("ERRORED_DOCUMENT_REQUEST", STATUS_MESSAGE.format(status=404), False),
        ("FAILED_DOCUMENT_REQUEST", "(Details: net::ERR_CONNECTION_RESET)", True),
        ("FAILED_DOCUMENT_REQUEST", "(Details: net::ERR_CONNECTION_REFUSED)", False),
        (
            "FAILED_DOCUMENT_REQUEST",
            "(Details: net::ERR_CERT_AUTHORITY_INVALID)",
            False,
        ),
        ("SOMETHING_NEW", None, False),
    ],
)
def test_is_transient(code: str, message: str | None, transient: bool) -> None:
    assert codes.is_transient(code, message) is transient


def test_http_status_read_from_message() -> None:
    assert codes.http_status(STATUS_MESSAGE.format(status=500)) == 500


def test_net_error_read_from_message() -> None:
    assert (
        codes.net_error("x (Details: net::ERR_EMPTY_RESPONSE)") == "ERR_EMPTY_RESPONSE"
    )
