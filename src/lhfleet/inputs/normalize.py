"""Checking and normalizing one URL, the way a browser would request it.

The normalized form follows the WHATWG URL standard that Chromium
implements, so the URL lhfleet stores is the URL Lighthouse requests:

- the scheme and host are lowercased, and an internationalized host name is
  converted to punycode (UTS #46, non-transitional, as Chromium does);
- IPv4 hosts written as numbers in other forms (``2130706433``,
  ``0x7f.1``, ``127.1``) become dotted decimal, and IPv6 hosts are
  compressed;
- the default port (80 for http, 443 for https) is dropped;
- ``.`` and ``..`` path segments are resolved, and an empty path becomes ``/``;
- non-ASCII characters, controls, spaces and the characters WHATWG lists for
  each part are percent-encoded as UTF-8; existing escapes are kept;
- the fragment is removed, because the browser never sends it and the server
  returns the same document, unless it starts with ``/`` or ``!``
  (``#/about``, ``#!/about``), which single-page apps use as a route.

An input with whitespace inside, a backslash, credentials or a scheme other
than http and https is rejected rather than repaired.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import SplitResult, urlsplit

import idna

MAX_URL_LENGTH = 8192
SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_HOST_LENGTH = 253
MAX_LABEL_LENGTH = 63

_FORBIDDEN_HOST = frozenset(" #%/:<>?@[\\]^|*")
_PATH_ESCAPES = frozenset(' "#<>?`{}')
_QUERY_ESCAPES = frozenset(" \"#<>'")
_FRAGMENT_ESCAPES = frozenset(' "<>`')
_ROUTE_FRAGMENT = ("/", "!")
_HOST_PORT = re.compile(r"^[^/?#]+:\d+(?:[/?#].*)?$")
_HEX = re.compile(r"^0[xX][0-9a-fA-F]*$")
_DECIMAL = re.compile(r"^[0-9]+$")


class URLProblem(ValueError):
    """The reason a URL cannot be audited, phrased to follow the URL in a message."""


def normalize_url(text: str) -> str:
    """Return the normalized form of an http(s) URL, or raise URLProblem."""
    _check_text(text)
    parts = _split(text)
    host = normalize_host(parts.hostname or "")
    port = _port(parts)
    netloc = host if port is None else f"{host}:{port}"
    path = encode_part(remove_dot_segments(parts.path or "/"), _PATH_ESCAPES)
    url = f"{parts.scheme.lower()}://{netloc}{path}"
    if parts.query:
        url += "?" + encode_part(parts.query, _QUERY_ESCAPES)
    fragment = kept_fragment(parts.fragment)
    if fragment:
        url += "#" + encode_part(fragment, _FRAGMENT_ESCAPES)
    if len(url) > MAX_URL_LENGTH:
        raise URLProblem(
            f"is longer than {MAX_URL_LENGTH} characters once percent-encoded"
        )
    return url


def check_url(text: str) -> str | None:
    """Return why a URL cannot be audited, or None when it can."""
    try:
        normalize_url(text)
    except URLProblem as problem:
        return str(problem)
    return None


def kept_fragment(fragment: str) -> str:
    """Return the fragment to keep: a client-side route, or nothing."""
    return fragment if fragment.startswith(_ROUTE_FRAGMENT) else ""


def _check_text(text: str) -> None:
    if len(text) > MAX_URL_LENGTH:
        raise URLProblem(f"is longer than {MAX_URL_LENGTH} characters")
    if any(character.isspace() for character in text):
        raise URLProblem("contains whitespace; percent-encode spaces as %20")
    if any(ord(character) < 0x20 or ord(character) == 0x7F for character in text):
        raise URLProblem("contains control characters")
    if "\\" in text:
        raise URLProblem("contains a backslash; write / between path segments")


def _split(text: str) -> SplitResult:
    try:
        parts = urlsplit(text)
    except ValueError as error:
        raise URLProblem(f"is not a valid URL ({error})") from error
    scheme = parts.scheme.lower()
    if not scheme or (scheme not in SCHEMES and _HOST_PORT.match(text)):
        raise URLProblem(
            f"has no scheme; write it as https://{text.removeprefix('//')[:80]}"
        )
    if scheme not in SCHEMES:
        raise URLProblem(
            f"has the unsupported scheme {parts.scheme}:; "
            "only http and https can be audited"
        )
    if parts.username is not None or parts.password is not None:
        raise URLProblem(
            "contains credentials; remove them and pass --basic-auth USER:PASSWORD"
        )
    if not parts.hostname:
        raise URLProblem("has no host name")
    return parts


def _port(parts: SplitResult) -> int | None:
    try:
        port = parts.port
    except ValueError as error:
        raise URLProblem(f"is not a valid URL ({error})") from error
    if port == 0:
        raise URLProblem("has port 0")
    if port == DEFAULT_PORTS[parts.scheme.lower()]:
        return None
    return port


def normalize_host(host: str) -> str:
    """Return a host as Chromium connects to it: punycode, IPs canonical."""
    if ":" in host:
        return f"[{_ipv6(host)}]"
    if not host.isascii():
        host = _to_ascii(host)
    host = host.lower()
    if any(character in _FORBIDDEN_HOST for character in host):
        raise URLProblem(f"has the invalid host name {host!r}")
    ipv4 = parse_ipv4(host)
    if ipv4 is not None:
        return ipv4
    _check_labels(host)
    return host


def _ipv6(host: str) -> str:
    if "%" in host:
        raise URLProblem("has an IPv6 zone id, which browsers do not accept")
    try:
        return ipaddress.IPv6Address(host).compressed
    except ValueError as error:
        raise URLProblem(f"has the invalid IPv6 address {host!r}") from error


def _to_ascii(host: str) -> str:
    try:
        mapped = idna.uts46_remap(host, std3_rules=False, transitional=False)
        labels = [
            label if label.isascii() else idna.alabel(label).decode("ascii")
            for label in mapped.split(".")
        ]
    except idna.IDNAError as error:
        raise URLProblem(f"has the invalid host name {host!r} ({error})") from error
    return ".".join(labels)


def _check_labels(host: str) -> None:
    labels = host.removesuffix(".").split(".")
    if len(host) > MAX_HOST_LENGTH or not all(labels):
        raise URLProblem(f"has the invalid host name {host!r}")
    for label in labels:
        if len(label) > MAX_LABEL_LENGTH:
            raise URLProblem(
                f"has a host label longer than {MAX_LABEL_LENGTH} characters"
            )
        if label.startswith("xn--"):
            try:
                idna.ulabel(label)
            except idna.IDNAError as error:
                raise URLProblem(
                    f"has the invalid punycode label {label!r} in its host name"
                ) from error


def parse_ipv4(host: str) -> str | None:
    """Return a host in dotted decimal when WHATWG reads it as IPv4, else None.

    Browsers read a host whose last label is a number as an IPv4 address in
    decimal, octal (leading 0) or hex (0x) parts, so ``http://0x7f.1/`` is
    ``127.0.0.1``. Such a host that is not a valid address is invalid.
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not (_DECIMAL.match(parts[-1]) or _HEX.match(parts[-1])):
        return None
    numbers = [_ipv4_number(part, host) for part in parts]
    if len(numbers) > 4 or any(number > 255 for number in numbers[:-1]):
        raise URLProblem(f"has the invalid IPv4 address {host!r}")
    if numbers[-1] >= 256 ** (5 - len(numbers)):
        raise URLProblem(f"has the invalid IPv4 address {host!r}")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return str(ipaddress.IPv4Address(value))


def _ipv4_number(part: str, host: str) -> int:
    try:
        if _HEX.match(part):
            return int(part[2:] or "0", 16)
        if len(part) > 1 and part.startswith("0"):
            return int(part, 8)
        return int(part, 10)
    except ValueError as error:
        raise URLProblem(f"has the invalid IPv4 address {host!r}") from error


def remove_dot_segments(path: str) -> str:
    """Resolve ``.`` and ``..`` segments, also percent-encoded ones, as WHATWG does."""
    output: list[str] = []
    segments = path.split("/")[1:] if path.startswith("/") else path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        kind = _dot_kind(segment)
        if kind == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        elif kind == ".":
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def _dot_kind(segment: str) -> str | None:
    lowered = segment.lower().replace("%2e", ".")
    return lowered if lowered in (".", "..") else None


def encode_part(text: str, escapes: frozenset[str]) -> str:
    """Percent-encode non-ASCII characters, controls and ``escapes`` as UTF-8."""
    encoded: list[str] = []
    for character in text:
        if character.isascii() and character not in escapes and ord(character) > 0x20:
            encoded.append(character)
        else:
            encoded.extend(f"%{byte:02X}" for byte in character.encode("utf-8"))
    return "".join(encoded)
