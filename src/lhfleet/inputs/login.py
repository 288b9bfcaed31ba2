"""Cookies, HTTP basic auth and login scripts for pages behind a login.

Cookies and basic auth end up in ``JobSecrets.extra_headers``, which the
auditor passes to Lighthouse and the worker redacts from stored reports.
A login script goes to ``JobSecrets.login_script``. Error messages name a
cookie, a user or a file, never a value or a password.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from lhfleet.errors import InvalidSettingError
from lhfleet.models import LoginScript

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[;\r\n\x00]")
_LINE_BREAK = re.compile(r"[\r\n\x00]")


def _from_file(option: str, value: str) -> list[str]:
    """Return the lines of ``@FILE``, or the value itself when it has no ``@``."""
    if not value.startswith("@"):
        return [value]
    path = Path(value[1:])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidSettingError(
            f"{option} {value}: cannot read the file {path} ({error}). "
            "Pass a readable UTF-8 file."
        ) from error
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def cookie_header(values: Sequence[str]) -> str | None:
    """Return a ``Cookie`` header from ``NAME=VALUE`` or ``@FILE`` values."""
    pairs: list[str] = []
    for value in values:
        for pair in _from_file("--cookie", value):
            name, sep, cookie = pair.partition("=")
            name = name.strip()
            if not sep or not _TOKEN.match(name):
                raise InvalidSettingError(
                    "--cookie takes NAME=VALUE (or @FILE with one per line); "
                    f"a value with the name {name[:40]!r} is not of that form."
                )
            if _BAD_VALUE.search(cookie):
                raise InvalidSettingError(
                    f"--cookie {name}: the value contains ';' or a line break. "
                    "Give each cookie as its own --cookie NAME=VALUE."
                )
            pairs.append(f"{name}={cookie.strip()}")
    return "; ".join(pairs) or None


def basic_auth_header(value: str) -> str:
    """Return an ``Authorization: Basic`` value from ``USER:PASSWORD`` or ``@FILE``."""
    lines = _from_file("--basic-auth", value)
    credentials = lines[0] if lines else ""
    user, sep, _password = credentials.partition(":")
    if not sep or not user:
        raise InvalidSettingError(
            "--basic-auth takes USER:PASSWORD, or @FILE holding that on its first "
            "line; the value has no user or no ':'."
        )
    if _LINE_BREAK.search(credentials):
        raise InvalidSettingError(
            f"--basic-auth for the user {user[:40]!r} contains a line break."
        )
    token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    return f"Basic {token}"


def login_headers(
    extra: Mapping[str, str], cookies: Sequence[str], basic_auth: str | None
) -> dict[str, str]:
    """Merge cookies and basic auth into the extra headers of a job.

    Cookies add to a ``Cookie`` header given with --extra-headers; an
    ``Authorization`` header given both ways is an error.
    """
    headers = dict(extra)
    names = {name.lower(): name for name in headers}
    cookie = cookie_header(cookies)
    if cookie:
        existing = names.get("cookie")
        if existing:
            headers[existing] = f"{headers[existing]}; {cookie}"
        else:
            headers["Cookie"] = cookie
    if basic_auth is not None:
        if "authorization" in names:
            raise InvalidSettingError(
                "--basic-auth and an Authorization header in --extra-headers were "
                "both given; keep one of them."
            )
        headers["Authorization"] = basic_auth_header(basic_auth)
    return headers


MAX_SCRIPT_BYTES = 1024 * 1024
SCRIPT_SUFFIXES = (".js", ".cjs", ".mjs")


def read_login_script(path: str) -> LoginScript:
    """Read a login script file; raise InvalidSettingError naming the problem.

    A script is a CommonJS (.js, .cjs) or ES (.mjs) module whose default
    export is an async function taking (browser, context), where browser is
    a Puppeteer Browser connected to the run's Chrome and context holds the
    URL about to be audited.
    """
    file = Path(path)
    if file.suffix not in SCRIPT_SUFFIXES:
        raise InvalidSettingError(
            f"--login-script {path} is not a JavaScript module; give a .js, .cjs "
            "or .mjs file that exports an async function (browser, context)."
        )
    try:
        data = file.read_bytes()
    except OSError as error:
        raise InvalidSettingError(
            f"--login-script {path} cannot be read: {error.strerror}. Check the "
            "path and its permissions."
        ) from error
    if len(data) > MAX_SCRIPT_BYTES:
        raise InvalidSettingError(
            f"--login-script {path} is {len(data)} bytes; the limit is "
            f"{MAX_SCRIPT_BYTES} bytes. Keep the sign-in steps in one short script."
        )
    try:
        source = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidSettingError(
            f"--login-script {path} is not UTF-8 text; save it as UTF-8."
        ) from error
    return LoginScript(file.name, source)
