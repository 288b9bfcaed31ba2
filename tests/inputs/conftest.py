"""A small site on loopback that the input tests read, crawl and audit."""

from __future__ import annotations

import contextlib
import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

HOLD_LIMIT = 120.0


@dataclass
class Page:
    """One response the site gives for a path."""

    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None
    """When given, the response waits until this event is set, at most
    HOLD_LIMIT seconds."""


class Site:
    """An HTTP server on a loopback address with pages set by the test."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.pages: dict[str, Page] = {}
        self.hits: list[str] = []
        self.request_headers: list[dict[str, str]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                site.hits.append(self.path)
                site.request_headers.append(dict(self.headers.items()))
                page = site.pages.get(self.path, Page(b"not found", 404))
                if page.hold is not None:
                    page.hold.wait(HOLD_LIMIT)
                # A client that gave up while the response was held has
                # closed the connection.
                with contextlib.suppress(OSError):
                    self._respond(page)

            def _respond(self, page: Page) -> None:
                self.send_response(page.status)
                headers = {"Content-Type": "text/html; charset=utf-8"}
                headers.update(page.headers)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(page.body)))
                self.end_headers()
                self.wfile.write(page.body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.host = host
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, args=(0.05,), daemon=True
        )
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def html(self, path: str, *links: str, status: int = 200) -> None:
        """Serve an HTML page with links to ``links``."""
        anchors = "".join(f'<a href="{link}">{link}</a>' for link in links)
        body = (
            f"<!doctype html><html lang=en><title>{path}</title>"
            f"<body><h1>{path}</h1>{anchors}</body></html>"
        )
        self.pages[path] = Page(body.encode(), status)

    def file(self, path: str, body: bytes, content_type: str) -> None:
        self.pages[path] = Page(body, headers={"Content-Type": content_type})

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        self.pages[path] = Page(status=status, headers={"Location": location})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def urlset(*urls: str) -> bytes:
    """Return a sitemaps.org ``urlset`` document listing ``urls``."""
    entries = "".join(f"<url><loc>{url}</loc></url>" for url in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"{entries}</urlset>"
    ).encode()


def sitemap_index(*urls: str) -> bytes:
    """Return a sitemaps.org ``sitemapindex`` document listing ``urls``."""
    entries = "".join(f"<sitemap><loc>{url}</loc></sitemap>" for url in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"{entries}</sitemapindex>"
    ).encode()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


@pytest.fixture
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.close()


@pytest.fixture
def other_site() -> Iterator[Site]:
    """A second origin, on 127.0.0.2, for off-origin links and redirects."""
    server = Site("127.0.0.2")
    yield server
    server.close()
