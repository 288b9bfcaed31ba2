"""A filtering HTTP proxy that holds the browser to the network guard.

Chrome started with ``GuardProxy.chrome_flags()`` sends every request
through this proxy: page loads, redirect hops, subresources, fetches and
WebSocket tunnels. For each one the proxy resolves the host itself and
checks every address with the guard. It connects only to an address it
checked, so neither a redirect nor a DNS answer that changes between check
and connection reaches a blocked range. A rejected request gets a 403 whose
body names the URL and the rule, and is kept in ``rejections``.

The flags also send loopback requests through the proxy (Chrome bypasses
proxies for loopback unless told ``<-loopback>``) and stop WebRTC from
using UDP outside the proxy. Plain-HTTP requests are forwarded one per
connection (``Connection: close``), so a connection that Chrome reuses for
another host never reaches that host unchecked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from types import TracebackType
from urllib.parse import urlsplit

from lhfleet import guard
from lhfleet.errors import TargetRejected

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 15.0
CHUNK = 64 * 1024
_HOP_HEADERS = (
    b"connection",
    b"proxy-connection",
    b"keep-alive",
    b"proxy-authorization",
)


class GuardProxy:
    """The proxy, on an ephemeral loopback port, served by a background thread."""

    def __init__(
        self,
        policy: guard.GuardPolicy,
        resolver: guard.Resolver | None = None,
        idle_timeout: float = 300.0,
    ) -> None:
        self.policy = policy
        self.resolver = resolver
        self.idle_timeout = idle_timeout
        self.port = 0
        self._rejections: list[TargetRejected] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="lhfleet-guard-proxy", daemon=True
        )
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def rejections(self) -> list[TargetRejected]:
        """Return the requests rejected so far, oldest first."""
        with self._lock:
            return list(self._rejections)

    def chrome_flags(self) -> tuple[str, ...]:
        """Return the Chrome flags that route every request through the proxy."""
        return (
            f"--proxy-server=http://127.0.0.1:{self.port}",
            "--proxy-bypass-list=<-loopback>",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        )

    def start(self) -> GuardProxy:
        """Bind a loopback port and start serving; return the proxy."""
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0, limit=MAX_HEAD),
            self._loop,
        )
        self._server = started.result(timeout=10)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("guard proxy started on 127.0.0.1:%d", self.port)
        return self

    def close(self) -> None:
        """Stop serving, end open connections and the thread."""
        if not self._thread.is_alive():
            if not self._loop.is_closed():
                self._loop.close()
            return
        stopped = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        stopped.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        logger.info(
            "guard proxy on port %d stopped; %d requests rejected",
            self.port,
            len(self._rejections),
        )

    def __enter__(self) -> GuardProxy:
        return self.start()

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._handle(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            logger.debug("guard proxy connection ended early", exc_info=True)
        except TimeoutError:
            logger.debug("guard proxy connection timed out")
        finally:
            writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
        method, target, lines = _parse_head(head)
        url = _checked_url(method, target)
        if url is None:
            await _respond(
                writer, 400, f"lhfleet's guard proxy cannot forward {target}"
            )
            return
        upstream = await self._open_checked(url, writer)
        if upstream is None:
            return
        if method == "CONNECT":
            writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            await self._tunnel(reader, writer, *upstream)
        else:
            upstream[1].write(_origin_form(method, url, lines))
            await self._forward(reader, writer, *upstream)

    async def _open_checked(
        self, url: str, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """Connect to a checked address of the URL's host, or respond with an error."""
        loop = asyncio.get_running_loop()
        try:
            host, port = guard.host_and_port(url)
            addresses = await loop.run_in_executor(
                None, guard.resolve, host, port, self.resolver
            )
            guard.check_addresses(url, host, addresses, self.policy)
        except TargetRejected as error:
            logger.warning("guard proxy rejected %s (rule %s)", url, error.rule)
            with self._lock:
                self._rejections.append(error)
            await _respond(writer, 403, str(error), rule=error.rule)
            return None
        except OSError as error:
            await _respond(writer, 502, f"Resolving the host of {url} failed: {error}")
            return None
        return await _connect_any(addresses, port, url, writer)

    async def _tunnel(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        try:
            await asyncio.gather(
                self._pipe(client_reader, upstream_writer),
                self._pipe(upstream_reader, client_writer),
            )
        finally:
            upstream_writer.close()

    async def _forward(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        """Send the request body up, and the response, marked to close, down."""
        sending = asyncio.ensure_future(self._pipe(client_reader, upstream_writer))
        try:
            head = await asyncio.wait_for(
                upstream_reader.readuntil(b"\r\n\r\n"), self.idle_timeout
            )
            client_writer.write(_closing_head(head))
            await self._pipe(upstream_reader, client_writer)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            upstream_writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await asyncio.wait_for(reader.read(CHUNK), self.idle_timeout):
                writer.write(data)
                await writer.drain()
        except (OSError, TimeoutError):
            logger.debug("guard proxy pipe ended", exc_info=True)
        finally:
            if writer.can_write_eof() and not writer.is_closing():
                with contextlib.suppress(OSError):
                    writer.write_eof()


def _parse_head(head: bytes) -> tuple[str, str, list[bytes]]:
    lines = head.split(b"\r\n")
    parts = lines[0].decode("latin-1").split(" ")
    if len(parts) != 3:
        return "", "", []
    return parts[0].upper(), parts[1], [line for line in lines[1:] if line]


def _checked_url(method: str, target: str) -> str | None:
    """Return the URL to check for a request, or None when it cannot be proxied."""
    if method == "CONNECT":
        host, sep, port = target.rpartition(":")
        if not sep or not port.isdigit() or not host:
            return None
        return f"https://{host}:{port}/"
    if method and target.lower().startswith("http://"):
        return target
    return None


def _origin_form(method: str, url: str, lines: list[bytes]) -> bytes:
    """Return the request head as an origin server expects it, with one request only."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    kept = [line for line in lines if _header_name(line) not in _HOP_HEADERS]
    if not any(_header_name(line) == b"host" for line in kept):
        kept.insert(0, b"Host: " + parts.netloc.encode("ascii", "replace"))
    kept.append(b"Connection: close")
    request_line = f"{method} {path} HTTP/1.1".encode("latin-1")
    return b"\r\n".join([request_line, *kept]) + b"\r\n\r\n"


def _closing_head(head: bytes) -> bytes:
    """Return a response head with ``Connection: close`` in place of hop headers."""
    lines = [line for line in head.split(b"\r\n") if line]
    kept = [lines[0]] + [
        line for line in lines[1:] if _header_name(line) not in _HOP_HEADERS
    ]
    kept.append(b"Connection: close")
    return b"\r\n".join(kept) + b"\r\n\r\n"


def _header_name(line: bytes) -> bytes:
    return line.split(b":", 1)[0].strip().lower()


async def _connect_any(
    addresses: list[str], port: int, url: str, writer: asyncio.StreamWriter
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    last: Exception | None = None
    for address in addresses:
        try:
            return await asyncio.wait_for(
                asyncio.open_connection(address, port), CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError) as error:
            last = error
    logger.info("guard proxy could not connect for %s: %s", url, last)
    await _respond(writer, 502, f"Connecting to the host of {url} failed: {last}")
    return None


async def _respond(
    writer: asyncio.StreamWriter, status: int, message: str, rule: str = ""
) -> None:
    reasons = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}
    body = (message + "\n").encode("utf-8")
    head = [
        f"HTTP/1.1 {status} {reasons[status]}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if rule:
        head.append(f"X-Lhfleet-Guard-Rule: {rule}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    with contextlib.suppress(OSError):
        await writer.drain()
