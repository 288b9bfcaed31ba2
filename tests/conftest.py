"""Fixtures for tests that load pages in a real browser: a page server on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

PAGES = Path(__file__).parent / "e2e" / "pages"
NOT_FOUND_PAGE = (
    b"<!doctype html><html lang=en><title>Not found</title>"
    b"<body><h1>Not found</h1></body></html>"
)


@dataclass(frozen=True)
class Request:
    """One request that the page server received: the path with its query."""

    path: str
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        """Return a header's value, matching the name without regard to case."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class PageServer:
    """A threaded HTTP server on 127.0.0.1 that serves the HTML files of a folder.

    ``/`` serves ``index.html``. Any path without a file gets a 404 HTML page.
    The server records every request with its headers.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._requests: list[Request] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests_to(self, path: str) -> list[Request]:
        """Return the recorded requests for ``path``, query included."""
        with self._lock:
            return [request for request in self._requests if request.path == path]

    def respond(self, path: str) -> tuple[int, bytes]:
        """Return the status and body for a request path."""
        name = urlsplit(path).path.lstrip("/") or "index.html"
        page = self.folder / name
        if "/" in name or not page.is_file():
            return 404, NOT_FOUND_PAGE
        return 200, page.read_bytes()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _record(self, request: Request) -> None:
        with self._lock:
            self._requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                pages._record(Request(self.path, dict(self.headers.items())))
                status, body = pages.respond(self.path)
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@pytest.fixture(scope="session")
def page_server() -> Iterator[PageServer]:
    """Serve the pages in tests/e2e/pages on 127.0.0.1, on a free port."""
    server = PageServer(PAGES)
    yield server
    server.close()


@pytest.fixture(scope="session")
def closed_port_url() -> Iterator[str]:
    """Return a URL on 127.0.0.1 whose port refuses connections.

    The socket is bound but never listens, so connections to it are refused
    and no other program can take the port while the tests run.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        yield f"http://127.0.0.1:{port}/"
