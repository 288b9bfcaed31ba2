"""Checking and normalizing single URLs, case by case."""

from __future__ import annotations

import pytest

from lhfleet.inputs.normalize import (
    URLProblem,
    check_url,
    normalize_url,
    parse_ipv4,
    remove_dot_segments,
)

NORMALIZED = [
    (
        "lowercase scheme and host",
        "HTTPS://Example.COM/Path",
        "https://example.com/Path",
    ),
    ("default http port", "http://a.test:80/", "http://a.test/"),
    ("default https port", "https://a.test:443/x", "https://a.test/x"),
    ("other port kept", "http://a.test:8080/", "http://a.test:8080/"),
    ("https on port 80 kept", "https://a.test:80/", "https://a.test:80/"),
    ("empty path", "http://a.test", "http://a.test/"),
    ("idn host", "https://bücher.example/", "https://xn--bcher-kva.example/"),
    ("idn uppercase", "https://BÜCHER.example/", "https://xn--bcher-kva.example/"),
    ("ideographic dot", "http://bücher。example/", "http://xn--bcher-kva.example/"),
    ("non-transitional sharp s", "http://straße.de/", "http://xn--strae-oqa.de/"),
    ("punycode kept", "http://xn--bcher-kva.example/", "http://xn--bcher-kva.example/"),
    ("non-ascii path", "http://a.test/Ärger", "http://a.test/%C3%84rger"),
    ("non-ascii query", "http://a.test/?q=é", "http://a.test/?q=%C3%A9"),
    ("escapes kept", "http://a.test/a%2Fb%zz", "http://a.test/a%2Fb%zz"),
    ("quote in path", 'http://a.test/"x"', "http://a.test/%22x%22"),
    ("quote in query", "http://a.test/?a='b'", "http://a.test/?a=%27b%27"),
    ("brackets in query kept", "http://a.test/?a[]=1", "http://a.test/?a[]=1"),
    ("dot segments", "http://a.test/a/./b/../c", "http://a.test/a/c"),
    ("encoded dot segments", "http://a.test/a/%2e%2E/c", "http://a.test/c"),
    ("trailing dot dot", "http://a.test/a/b/..", "http://a.test/a/"),
    ("dot dot above root", "http://a.test/../../x", "http://a.test/x"),
    ("fragment dropped", "http://a.test/page#section", "http://a.test/page"),
    ("route fragment kept", "http://a.test/#/about", "http://a.test/#/about"),
    ("hashbang kept", "http://a.test/#!/about", "http://a.test/#!/about"),
    ("decimal ipv4", "http://2130706433/", "http://127.0.0.1/"),
    ("hex ipv4", "http://0x7f.1/", "http://127.0.0.1/"),
    ("octal ipv4", "http://0177.0.0.01/", "http://127.0.0.1/"),
    ("short ipv4", "http://10.1/", "http://10.0.0.1/"),
    ("ipv4 trailing dot", "http://1.2.3.4./", "http://1.2.3.4/"),
    ("ipv6 compressed", "http://[0:0:0:0:0:0:0:1]:8080/", "http://[::1]:8080/"),
    ("ipv6 uppercase", "http://[FE80::1]/", "http://[fe80::1]/"),
    ("ipv4-mapped ipv6", "http://[::ffff:10.0.0.1]/", "http://[::ffff:a00:1]/"),
    ("underscore host", "http://my_host.test/", "http://my_host.test/"),
    ("query kept in order", "http://a.test/?b=2&a=1", "http://a.test/?b=2&a=1"),
]


@pytest.mark.parametrize(
    ("written", "expected"),
    [case[1:] for case in NORMALIZED],
    ids=[case[0] for case in NORMALIZED],
)
def test_normalize_url(written: str, expected: str) -> None:
    assert normalize_url(written) == expected


REJECTED = [
    ("no scheme", "example.com/page", "has no scheme"),
    ("no scheme with port", "localhost:8080/x", "has no scheme"),
    ("protocol-relative", "//example.com/", "has no scheme"),
    ("file scheme", "file:///etc/passwd", "unsupported scheme file:"),
    ("javascript scheme", "javascript:alert(1)", "unsupported scheme javascript:"),
    ("chrome scheme", "chrome://settings", "unsupported scheme chrome:"),
    ("data scheme", "data:text/html,hi", "unsupported scheme data:"),
    ("ftp scheme", "ftp://a.test/", "unsupported scheme ftp:"),
    ("credentials", "http://user:pw@a.test/", "contains credentials"),
    ("user only", "http://user@a.test/", "contains credentials"),
    ("no host", "http:///path", "no host name"),
    ("port out of range", "http://a.test:99999/", "not a valid URL"),
    ("port zero", "http://a.test:0/", "port 0"),
    ("port not a number", "http://a.test:80a/", "not a valid URL"),
    ("space", "http://a b.test/", "whitespace"),
    ("tab", "http://a.test/\tx", "whitespace"),
    ("control character", "http://a.test/\x01", "control characters"),
    ("backslash", "http://a.test\\path", "backslash"),
    ("too long", "http://a.test/" + "x" * 9000, "longer than 8192"),
    ("too long once encoded", "http://a.test/" + "é" * 1400, "once percent-encoded"),
    ("empty label", "http://a..test/", "invalid host name"),
    ("forbidden host character", "http://a<b.test/", "invalid host name"),
    ("label over 63", "http://" + "a" * 64 + ".test/", "longer than 63"),
    ("bad punycode", "http://xn--zz.test/", "invalid punycode"),
    ("ipv4 part over 255", "http://1.256.0.1/", "invalid IPv4"),
    ("ipv4 too many parts", "http://1.2.3.4.5/", "invalid IPv4"),
    ("bad octal", "http://08.1.2.3/", "invalid IPv4"),
    ("name ending in number", "http://host.123/", "invalid IPv4"),
    ("bad ipv6", "http://[::g]/", "not a valid URL"),
    ("ipv6 zone", "http://[fe80::1%25eth0]/", "zone id"),
]


@pytest.mark.parametrize(
    ("written", "reason"),
    [case[1:] for case in REJECTED],
    ids=[case[0] for case in REJECTED],
)
def test_normalize_url_rejects(written: str, reason: str) -> None:
    with pytest.raises(URLProblem, match=reason.replace(".", r"\.")):
        normalize_url(written)


def test_check_url_returns_reason() -> None:
    assert check_url("mailto:a@b.test") == (
        "has the unsupported scheme mailto:; only http and https can be audited"
    )


def test_check_url_accepts_valid() -> None:
    assert check_url("https://a.test/p?q=1#f") is None


def test_no_scheme_suggests_https() -> None:
    assert check_url("example.com") == (
        "has no scheme; write it as https://example.com"
    )


@pytest.mark.parametrize(
    ("host", "expected"),
    [("example.com", None), ("0x", "0.0.0.0"), ("255.255.255.255", "255.255.255.255")],
)
def test_parse_ipv4(host: str, expected: str | None) -> None:
    assert parse_ipv4(host) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/", "/"), ("//a", "//a"), ("/a/.", "/a/"), ("/a/b/../../..", "/")],
)
def test_remove_dot_segments(path: str, expected: str) -> None:
    assert remove_dot_segments(path) == expected
