"""The guard proxy, driven by a plain HTTP client instead of Chrome."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence

import pytest

from lhfleet.guard import GuardPolicy
from lhfleet.guard_proxy import GuardProxy
from tests.inputs.conftest import Site

ALLOW_SITE = GuardPolicy.from_cidrs(["127.0.0.1/32"])


def fake_resolver(host: str, port: int) -> Sequence[str]:
    """A fake resolver for made-up names, so the tests send no DNS queries."""
    table = {"www.test": ["127.0.0.1"], "inside.test": ["127.0.0.2"]}
    if host not in table:
        raise OSError(f"unknown host {host}")
    return table[host]


@pytest.fixture
def proxy() -> Iterator[GuardProxy]:
    with GuardProxy(ALLOW_SITE, fake_resolver) as running:
        yield running


def opener(proxy: GuardProxy) -> urllib.request.OpenerDirector:
    address = f"http://127.0.0.1:{proxy.port}"
    return urllib.request.build_opener(urllib.request.ProxyHandler({"http": address}))


def raw_request(proxy: GuardProxy, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_allowed_request_is_forwarded(proxy: GuardProxy, site: Site) -> None:
    site.html("/page")
    with opener(proxy).open(site.url("/page")) as response:
        assert response.status == 200
        assert response.headers["Connection"] == "close"
    assert site.hits == ["/page"]


def test_blocked_request_gets_403(proxy: GuardProxy, other_site: Site) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener(proxy).open(other_site.url("/secret"))
    assert caught.value.code == 403
    assert caught.value.headers["X-Lhfleet-Guard-Rule"] == "loopback"
    assert other_site.hits == []


def test_rejection_is_recorded(proxy: GuardProxy, other_site: Site) -> None:
    with pytest.raises(urllib.error.HTTPError):
        opener(proxy).open(other_site.url("/secret"))
    assert [rejected.url for rejected in proxy.rejections] == [
        other_site.url("/secret")
    ]


def test_name_is_connected_to_checked_address(proxy: GuardProxy, site: Site) -> None:
    site.html("/")
    with opener(proxy).open(f"http://www.test:{site.port}/") as response:
        assert response.status == 200
    assert site.request_headers[0]["Host"] == f"www.test:{site.port}"


def test_name_resolving_into_blocked_range(proxy: GuardProxy, other_site: Site) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener(proxy).open(f"http://inside.test:{other_site.port}/")
    assert caught.value.code == 403
    assert other_site.hits == []


def test_proxy_headers_are_not_forwarded(proxy: GuardProxy, site: Site) -> None:
    site.html("/")
    request = (
        f"GET {site.url('/')} HTTP/1.1\r\nHost: 127.0.0.1:{site.port}\r\n"
        "Proxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive\r\n\r\n"
    ).encode()
    answer = raw_request(proxy, request)
    assert answer.startswith(b"HTTP/1.0 200") or answer.startswith(b"HTTP/1.1 200")
    assert "Proxy-Authorization" not in site.request_headers[0]


def test_connect_to_blocked_range(proxy: GuardProxy, other_site: Site) -> None:
    answer = raw_request(
        proxy, f"CONNECT 127.0.0.2:{other_site.port} HTTP/1.1\r\n\r\n".encode()
    )
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")


def test_connect_to_allowed_host_tunnels(proxy: GuardProxy, site: Site) -> None:
    site.html("/tunnel")
    request = (
        f"CONNECT 127.0.0.1:{site.port} HTTP/1.1\r\n\r\n"
        f"GET /tunnel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    ).encode()
    answer = raw_request(proxy, request)
    assert answer.startswith(b"HTTP/1.1 200 Connection Established\r\n\r\nHTTP/1.")
    assert site.hits == ["/tunnel"]


def test_relative_request_gets_400(proxy: GuardProxy) -> None:
    answer = raw_request(proxy, b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400 Bad Request")


def test_unreachable_port_gets_502(proxy: GuardProxy) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(urllib.error.HTTPError) as caught:
        opener(proxy).open(f"http://127.0.0.1:{port}/")
    assert caught.value.code == 502


def test_chrome_flags_name_the_port(proxy: GuardProxy) -> None:
    assert proxy.chrome_flags()[:2] == (
        f"--proxy-server=http://127.0.0.1:{proxy.port}",
        "--proxy-bypass-list=<-loopback>",
    )


def test_close_twice_is_harmless() -> None:
    proxy = GuardProxy(ALLOW_SITE).start()
    proxy.close()
    proxy.close()
