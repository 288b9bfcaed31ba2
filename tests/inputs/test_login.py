"""Cookies and basic auth turned into extra headers."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from lhfleet.errors import InvalidSettingError
from lhfleet.inputs.login import basic_auth_header, cookie_header, login_headers


def test_cookies_join() -> None:
    assert cookie_header(["a=1", "b=x=y"]) == "a=1; b=x=y"


def test_cookies_from_file(tmp_path: Path) -> None:
    path = tmp_path / "cookies.txt"
    path.write_text("# session\nsid=abc\n\ntheme=dark\n", encoding="utf-8")
    assert cookie_header([f"@{path}"]) == "sid=abc; theme=dark"


def test_cookie_without_equals() -> None:
    with pytest.raises(InvalidSettingError, match="NAME=VALUE"):
        cookie_header(["sid"])


def test_cookie_error_hides_value() -> None:
    with pytest.raises(InvalidSettingError) as caught:
        cookie_header(["sid=top;secret"])
    assert "sid" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_basic_auth() -> None:
    expected = base64.b64encode("ann:pa:ss;wörd".encode()).decode()
    assert basic_auth_header("ann:pa:ss;wörd") == f"Basic {expected}"


def test_basic_auth_from_file(tmp_path: Path) -> None:
    path = tmp_path / "auth"
    path.write_text("ann:secret\n", encoding="utf-8")
    assert basic_auth_header(f"@{path}") == basic_auth_header("ann:secret")


def test_basic_auth_without_colon_hides_value() -> None:
    with pytest.raises(InvalidSettingError) as caught:
        basic_auth_header("annsecret")
    assert "annsecret" not in str(caught.value)


def test_login_headers_add_to_cookie_header() -> None:
    headers = login_headers({"cookie": "a=1"}, ["b=2"], None)
    assert headers == {"cookie": "a=1; b=2"}


def test_login_headers_add_authorization() -> None:
    headers = login_headers({}, [], "ann:secret")
    assert headers["Authorization"] == basic_auth_header("ann:secret")


def test_login_headers_reject_two_authorizations() -> None:
    with pytest.raises(InvalidSettingError, match="keep one"):
        login_headers({"Authorization": "Bearer x"}, [], "ann:secret")


def test_missing_file() -> None:
    with pytest.raises(InvalidSettingError, match="cannot read the file"):
        cookie_header(["@/nonexistent/cookies.txt"])
