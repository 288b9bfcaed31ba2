"""HTTP GET for sitemaps, robots.txt and crawled pages, under the network guard.

Each request resolves the host itself and, when a guard policy is set,
checks every address before connecting to one of those same addresses, so
a DNS answer that changes after the check is never used. Redirects are
followed by hand, and each hop is checked the same way. The job's login
headers (cookies, basic auth, extra headers) go only to the origin of the
URL first requested, never to another origin a redirect leads to.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version as _version
from urllib.parse import urljoin, urlsplit

from lhfleet import guard
from lhfleet.errors import InputFetchError, InputTooLargeError
from lhfleet.inputs.normalize import URLProblem, normalize_url

logger = logging.getLogger(__name__)

USER_AGENT = f"lhfleet/{_version('lhfleet')}"
MAX_REDIRECTS = 5
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Response:
    """A response after redirects: its final URL, status, type and body."""

    url: str
    status: int
    content_type: str
    body: bytes
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def origin(url: str) -> str:
    """Return a normalized URL's origin: scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Fetcher:
    """Fetches URLs for the inputs, one request at a time."""

    def __init__(
        self,
        policy: guard.GuardPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 15.0,
        verify_tls: bool = True,
        resolver: guard.Resolver | None = None,
    ) -> None:
        self.policy = policy
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.resolver = resolver
        self.tls = ssl.create_default_context()
        if not verify_tls:
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE

    def get(self, url: str, max_bytes: int, truncate: bool = False) -> Response:
        """Fetch a URL, following redirects; read at most ``max_bytes`` of body.

        A longer body raises InputTooLargeError, or is cut when ``truncate``.
        """
        first = _normalized(url)
        current = first
        for _hop in range(MAX_REDIRECTS + 1):
            secrets = origin(current) == origin(first)
            status, headers, body, cut = self._request(
                current, max_bytes, truncate, secrets
            )
            location = headers.get("location")
            if status not in REDIRECT_STATUSES or not location:
                content_type = headers.get("content-type", "")
                return Response(current, status, content_type, body, cut)
            current = _normalized(urljoin(current, location))
            logger.debug("redirected from %s to %s", url, current)
        raise InputFetchError(
            f"Fetching {url} failed: more than {MAX_REDIRECTS} redirects. "
            "Pass the URL the redirects end at."
        )

    def _request(
        self, url: str, max_bytes: int, truncate: bool, secrets: bool
    ) -> tuple[int, dict[str, str], bytes, bool]:
        parts = urlsplit(url)
        connection = self._connect(url)
        headers = {
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "gzip",
            **(self.headers if secrets else {}),
        }
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            found = {key.lower(): value for key, value in response.getheaders()}
            body, cut = _read_body(response, found, max_bytes, truncate, url)
        except (OSError, http.client.HTTPException) as error:
            raise _fetch_error(url, error) from error
        finally:
            connection.close()
        return response.status, found, body, cut

    def _connect(self, url: str) -> http.client.HTTPConnection:
        host, port = guard.host_and_port(url)
        try:
            addresses = guard.resolve(host, port, self.resolver)
        except OSError as error:
            raise _fetch_error(url, error) from error
        if self.policy is not None:
            guard.check_addresses(url, host, addresses, self.policy)
        if urlsplit(url).scheme == "https":
            return _PinnedHTTPSConnection(host, port, addresses, self.timeout, self.tls)
        return _PinnedHTTPConnection(host, port, addresses, self.timeout)


def _normalized(url: str) -> str:
    try:
        return normalize_url(url)
    except URLProblem as problem:
        raise InputFetchError(f"Cannot fetch {url[:200]!r}: it {problem}.") from problem


def _fetch_error(url: str, error: Exception) -> InputFetchError:
    logger.info("fetching %s failed: %s", url, error)
    return InputFetchError(
        f"Fetching {url} failed: {error}. Check that the URL is right and the "
        "server is up."
    )


def _read_body(
    response: http.client.HTTPResponse,
    headers: dict[str, str],
    max_bytes: int,
    truncate: bool,
    url: str,
) -> tuple[bytes, bool]:
    raw = response.read(max_bytes + 1)
    cut = len(raw) > max_bytes
    if cut and not truncate:
        raise _too_large(url, max_bytes)
    raw = raw[:max_bytes]
    if headers.get("content-encoding", "").lower() == "gzip":
        raw, gunzip_cut = gunzip(raw, max_bytes, url, truncate)
        cut = cut or gunzip_cut
    return raw, cut


def gunzip(
    data: bytes, max_bytes: int, name: str, truncate: bool
) -> tuple[bytes, bool]:
    """Decompress gzip data, at most ``max_bytes`` of it, so a gzip bomb is harmless.

    Return the data and whether it was cut; raise InputTooLargeError instead
    of cutting unless ``truncate``.
    """
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        output = inflater.decompress(data, max_bytes + 1)
    except zlib.error as error:
        raise InputFetchError(
            f"{name} is not valid gzip data ({error}). Serve it uncompressed or "
            "gzip it again."
        ) from error
    cut = len(output) > max_bytes or bool(inflater.unconsumed_tail)
    if cut and not truncate:
        raise _too_large(name, max_bytes)
    return output[:max_bytes], cut


def _too_large(name: str, max_bytes: int) -> InputTooLargeError:
    return InputTooLargeError(
        f"{name} is larger than {max_bytes} bytes (uncompressed). Split it, or "
        "list its URLs in smaller files."
    )


def _open_socket(addresses: list[str], port: int, timeout: float) -> socket.socket:
    """Connect to the first of the checked addresses that accepts."""
    last: OSError = OSError("no address to connect to")
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout=timeout)
        except OSError as error:
            last = error
    raise last


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to addresses resolved (and checked) beforehand."""

    def __init__(
        self, host: str, port: int, addresses: list[str], timeout: float
    ) -> None:
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self) -> None:
        self.sock = _open_socket(self.addresses, self.port, self.timeout or 15.0)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to checked addresses, verifying the host name."""

    def __init__(
        self,
        host: str,
        port: int,
        addresses: list[str],
        timeout: float,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self.addresses = addresses
        self.tls_context = context

    def connect(self) -> None:
        sock = _open_socket(self.addresses, self.port, self.timeout or 15.0)
        self.sock = self.tls_context.wrap_socket(sock, server_hostname=self.host)
