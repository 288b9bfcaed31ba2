"""Login scripts: read and checked at submission, run in the audit's Chrome."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from lhfleet import codes
from lhfleet.errors import InvalidSettingError
from lhfleet.inputs.login import MAX_SCRIPT_BYTES, read_login_script
from lhfleet.models import JobSecrets, LoginScript
from tests.e2e.harness import JOB_TIMEOUT, DataDir

SESSION = "session=signed-in-ada"
SIGN_IN = """\
module.exports = async (browser, context) => {
  const page = await browser.newPage();
  await page.goto(new URL('/login', context.url).href);
  await page.type('#user', 'ada');
  await page.type('#password', 'hunter2');
  await Promise.all([page.waitForNavigation(), page.click('#submit')]);
  await page.close();
};
"""
BROKEN = """\
export default async () => {
  throw new Error('the sign-in button is missing');
};
"""
PAGE = (
    "<!doctype html><html lang=en><head><meta charset=utf-8>"
    "<meta name=viewport content='width=device-width'><title>{title}</title>"
    "</head><body>{body}</body></html>"
)
FORM = (
    "<form method=post action=/login><input id=user name=user>"
    "<input id=password name=password type=password>"
    "<button id=submit type=submit>Sign in</button></form>"
)


@dataclass
class LoginSite:
    """A site whose /account page needs the cookie that POST /login sets."""

    port: int = 0
    account_hits: list[str | None] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def login_site() -> Iterator[LoginSite]:
    site = LoginSite()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/account":
                cookie = self.headers.get("Cookie")
                site.account_hits.append(cookie)
                if cookie != SESSION:
                    self._redirect("/login")
                    return
                self._page("Account", "<h1>Welcome back, Ada</h1>")
            elif self.path == "/login":
                self._page("Sign in", FORM)
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            if form.get("user") == ["ada"] and form.get("password") == ["hunter2"]:
                self.send_response(303)
                self.send_header("Set-Cookie", f"{SESSION}; Path=/")
                self.send_header("Location", "/account")
                self.end_headers()
                return
            self._redirect("/login")

        def _redirect(self, where: str) -> None:
            self.send_response(302)
            self.send_header("Location", where)
            self.end_headers()

        def _page(self, title: str, body: str) -> None:
            data = PAGE.format(title=title, body=body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    site.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield site
    server.shutdown()
    server.server_close()


def test_script_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "login.cjs"
    path.write_text(SIGN_IN, encoding="utf-8")
    assert read_login_script(str(path)) == LoginScript("login.cjs", SIGN_IN)


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("login.py", b"print()", "is not a JavaScript module"),
        ("login.js", b"\xff\xfe", "is not UTF-8 text"),
        ("login.js", b"x" * (MAX_SCRIPT_BYTES + 1), "the limit is"),
    ],
)
def test_bad_script_files_are_rejected(
    tmp_path: Path, name: str, content: bytes, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidSettingError, match=expected):
        read_login_script(str(path))


def test_missing_script_file_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettingError, match="cannot be read"):
        read_login_script(str(tmp_path / "absent.js"))


def test_secrets_keep_the_script_out_of_repr() -> None:
    secrets = JobSecrets({"X-Token": "t"}, LoginScript("login.js", SIGN_IN))
    assert "hunter2" not in repr(secrets)
    assert JobSecrets.from_dict(secrets.to_dict()) == secrets


@pytest.mark.lighthouse
def test_script_signs_in_before_the_audit(
    login_site: LoginSite, tmp_path: Path
) -> None:
    script = tmp_path / "login.cjs"
    script.write_text(SIGN_IN, encoding="utf-8")
    data = DataDir(tmp_path / "data")
    completed = data.run(
        "run", login_site.url("/account"), "--runs", "1",
        "--categories", "performance", "--login-script", str(script), "--json",
        timeout=JOB_TIMEOUT,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    run = data.read_json("results", data.jobs()[0]["id"], "--json")["urls"][0]["runs"][
        0
    ]
    assert run["state"] == "succeeded", run["error_message"]
    assert run["final_url"] == login_site.url("/account")
    assert SESSION in login_site.account_hits
    assert "hunter2" not in completed.stdout + completed.stderr
    assert "hunter2" not in data.log.read_text(encoding="utf-8")


@pytest.mark.lighthouse
def test_failing_script_fails_the_run_once(
    login_site: LoginSite, tmp_path: Path
) -> None:
    script = tmp_path / "login.mjs"
    script.write_text(BROKEN, encoding="utf-8")
    data = DataDir(tmp_path / "data")
    completed = data.run(
        "run", login_site.url("/account"), "--runs", "1",
        "--categories", "performance", "--login-script", str(script), "--json",
        timeout=JOB_TIMEOUT,
    )  # fmt: skip
    assert completed.returncode == 1, completed.stderr
    document = data.read_json("results", data.jobs()[0]["id"], "--json")
    run = document["urls"][0]["runs"][0]
    assert run["error_code"] == codes.LOGIN_SCRIPT_FAILED
    assert "the sign-in button is missing" in run["error_message"]
    assert run["attempts"] == 1
    assert login_site.account_hits == []
