"""Loopback servers with one endpoint per kind of hostile page.

``HostileSite`` starts, on loopback only: the main HTTP server on 127.0.0.1,
a second one on 127.0.0.2 (the target of a cross-host redirect), an HTTPS
server with a self-signed certificate, a socket that accepts connections and
never responds, and a port that is closed.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

MAIN_HOST = "127.0.0.1"
OTHER_HOST = "127.0.0.2"

BLANK_PAINT_DELAY_MS = 40_000
"""When the blank page paints: past Lighthouse's 30 s wait for the first paint."""

SLOW_ONCE_DELAY = 20.0
"""Seconds the server waits before it responds to each slow-once page the first time."""

POLL_DELAY = 0.3
"""Seconds the server waits before each response to the page's endless polling."""

GOOD_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>body {{ font-family: sans-serif; margin: 2em; }}</style>
</head><body>
<h1>{title}</h1>
<p>A plain page that every run of Lighthouse should audit without trouble.</p>
<ul><li>First item</li><li>Second item</li><li>Third item</li></ul>
</body></html>
"""

NARROW_LOOP_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Loops on narrow screens</title></head><body>
<h1>Wide screens see this heading</h1>
<script>if (innerWidth < 500) { while (true) {} }</script>
</body></html>
"""

STALLED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stalled subresource</title></head><body>
<h1>An image that never arrives</h1>
<img src="http://{silent}/pixel.png" alt="never loads" width="10" height="10">
<script>
function poll() {{ fetch("/poll").finally(() => setTimeout(poll, 50)); }}
poll();
</script>
</body></html>
"""

BLANK_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Blank for a long time</title></head><body>
<script>
setTimeout(() => {{ document.body.textContent = "Painted at last"; }}, {delay});
</script>
</body></html>
"""

DIALOG_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dialogs</title></head><body>
<h1>Dialogs on load</h1>
<script>
addEventListener("beforeunload", (event) => {
  event.preventDefault();
  event.returnValue = "";
});
addEventListener("load", () => {
  alert("alert on load");
  confirm("confirm on load");
});
</script>
</body></html>
"""

MINIMAL_PDF = b"""%PDF-1.4
1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj
trailer << /Root 1 0 R >>
%%EOF
"""


def png_chunk(kind: bytes, data: bytes) -> bytes:
    checksum = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)


def one_pixel_png() -> bytes:
    """Return a valid one-pixel transparent PNG."""
    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", pixels)
        + png_chunk(b"IEND", b"")
    )


@dataclass
class Hits:
    """Request counts per path, shared by every handler thread."""

    counts: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, path: str) -> int:
        """Count a request of ``path`` and return how many there have been."""
        with self.lock:
            self.counts[path] = self.counts.get(path, 0) + 1
            return self.counts[path]

    def get(self, path: str) -> int:
        with self.lock:
            return self.counts.get(path, 0)


class HostileHandler(BaseHTTPRequestHandler):
    """Request handler for the hostile pages, one kind per path."""

    server_version = "hostile/1"
    hits: ClassVar[Hits]
    silent_address: ClassVar[str]
    other_origin: ClassVar[str]

    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output free of one line per request."""

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        count = self.hits.add(path)
        handler = self.routes().get(path)
        try:
            if handler is not None:
                handler(self, count)
            elif path.startswith("/slow-once/"):
                self.slow_once(count)
            elif path.startswith("/good/"):
                self.html(GOOD_PAGE.format(title=f"Good page {path[6:]}"))
            else:
                self.html("<h1>Not found</h1>", status=404)
        except (BrokenPipeError, ConnectionResetError):
            pass

    @classmethod
    def routes(cls) -> dict[str, Callable[[HostileHandler, int], None]]:
        return {
            "/narrow-loop.html": lambda h, _: h.html(NARROW_LOOP_PAGE),
            "/stalled.html": lambda h, _: h.html(
                STALLED_PAGE.format(silent=h.silent_address)
            ),
            "/poll": HostileHandler.poll,
            "/blank-alternate.html": HostileHandler.blank_alternate,
            "/redirect-other-host": lambda h, _: h.redirect(
                f"{h.other_origin}/good/redirected.html"
            ),
            "/redirect-loop": lambda h, _: h.redirect("/redirect-loop"),
            "/status-404": lambda h, _: h.html("<h1>Gone</h1>", status=404),
            "/status-500": lambda h, _: h.html("<h1>Broken</h1>", status=500),
            "/status-503": HostileHandler.unavailable,
            "/doc.pdf": lambda h, _: h.body(MINIMAL_PDF, "application/pdf"),
            "/data.json": lambda h, _: h.body(
                json.dumps({"kind": "json"}).encode(), "application/json"
            ),
            "/pixel.png": lambda h, _: h.body(one_pixel_png(), "image/png"),
            "/no-content-type.html": lambda h, _: h.body(
                GOOD_PAGE.format(title="No content type").encode(), None
            ),
            "/dialogs.html": lambda h, _: h.html(DIALOG_PAGE),
        }

    def html(self, text: str, status: int = 200) -> None:
        self.body(text.encode(), "text/html; charset=utf-8", status)

    def body(
        self,
        data: bytes,
        content_type: str | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def redirect(self, location: str) -> None:
        self.body(b"", None, status=302, headers={"Location": location})

    def unavailable(self, _count: int) -> None:
        page = b"<h1>Down for maintenance</h1>"
        self.body(page, "text/html", status=503, headers={"Retry-After": "120"})

    def poll(self, _count: int) -> None:
        time.sleep(POLL_DELAY)
        self.body(b"{}", "application/json")

    def blank_alternate(self, count: int) -> None:
        """Serve the blank page on odd-numbered requests and a good page on even ones.

        A successful run requests the page twice, because Lighthouse's
        back/forward cache check loads it again, so only the first two runs
        of a URL alternate strictly.
        """
        if count % 2:
            self.html(BLANK_PAGE.format(delay=BLANK_PAINT_DELAY_MS))
        else:
            self.html(GOOD_PAGE.format(title="Painted this time"))

    def slow_once(self, count: int) -> None:
        """Respond to the first request of the path late, and to later ones at once."""
        if count == 1:
            time.sleep(SLOW_ONCE_DELAY)
        self.html(GOOD_PAGE.format(title="Slow the first time"))


class SilentListener:
    """A TCP port that accepts every connection and never sends a byte."""

    def __init__(self, host: str) -> None:
        self.socket = socket.create_server((host, 0))
        self.address = f"{host}:{self.socket.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.closed.set()
        self.socket.close()
        for connection in self.held:
            connection.close()


def closed_port(host: str) -> int:
    """Return a port on ``host`` that nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def write_self_signed(folder: Path, host: str) -> tuple[Path, Path]:
    """Write a one-day certificate and key for the IP ``host``; return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "cert.pem"
    key_path = folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class HostileSite:
    """Every hostile server, started together on loopback and stopped together."""

    def __init__(self, folder: Path) -> None:
        self.hits = Hits()
        self.silent = SilentListener(MAIN_HOST)
        self.closed_port = closed_port(MAIN_HOST)
        self.main = self._serve(MAIN_HOST)
        self.other = self._serve(OTHER_HOST)
        self.secure = self._serve(MAIN_HOST)
        cert, key = write_self_signed(folder, MAIN_HOST)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.secure.socket = context.wrap_socket(self.secure.socket, server_side=True)
        handler = type(
            "SiteHandler",
            (HostileHandler,),
            {
                "hits": self.hits,
                "silent_address": self.silent.address,
                "other_origin": self.origin(self.other),
            },
        )
        self.threads = []
        for server in (self.main, self.other, self.secure):
            server.RequestHandlerClass = handler
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self.threads.append(thread)

    @staticmethod
    def _serve(host: str) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((host, 0), HostileHandler)
        server.daemon_threads = True
        return server

    @staticmethod
    def origin(server: ThreadingHTTPServer, scheme: str = "http") -> str:
        host, port = server.server_address[:2]
        return f"{scheme}://{host!s}:{port}"

    def url(self, path: str) -> str:
        """Return the URL of ``path`` on the main HTTP server."""
        return f"{self.origin(self.main)}{path}"

    def secure_url(self, path: str) -> str:
        return f"{self.origin(self.secure, 'https')}{path}"

    @property
    def silent_url(self) -> str:
        return f"http://{self.silent.address}/"

    @property
    def closed_url(self) -> str:
        return f"http://{MAIN_HOST}:{self.closed_port}/"

    def close(self) -> None:
        for server in (self.main, self.other, self.secure):
            server.shutdown()
            server.server_close()
        self.silent.close()
