"""Fetching sitemaps and pages: redirects, the guard, headers and sizes."""

from __future__ import annotations

import gzip

import pytest

from lhfleet.errors import InputFetchError, InputTooLargeError, TargetRejected
from lhfleet.guard import GuardPolicy
from lhfleet.inputs.fetch import Fetcher, gunzip
from tests.inputs.conftest import Page, Site

ALLOW_SITE = GuardPolicy.from_cidrs(["127.0.0.1/32"])


def test_get_follows_redirects(site: Site) -> None:
    site.redirect("/old", "/new")
    site.html("/new")
    response = Fetcher().get(site.url("/old"), 1000)
    assert response.url == site.url("/new")
    assert response.status == 200


def test_guard_rejects_redirect_hop(site: Site, other_site: Site) -> None:
    site.redirect("/go", other_site.url("/secret"))
    with pytest.raises(TargetRejected, match="rule loopback"):
        Fetcher(policy=ALLOW_SITE).get(site.url("/go"), 1000)
    assert other_site.hits == []


def test_guard_rejects_first_request(other_site: Site) -> None:
    with pytest.raises(TargetRejected):
        Fetcher(policy=ALLOW_SITE).get(other_site.url("/"), 1000)
    assert other_site.hits == []


def test_headers_go_to_same_origin_only(site: Site, other_site: Site) -> None:
    site.redirect("/go", other_site.url("/landing"))
    other_site.html("/landing")
    Fetcher(headers={"Cookie": "session=s3cret"}).get(site.url("/go"), 1000)
    assert site.request_headers[0]["Cookie"] == "session=s3cret"
    assert "Cookie" not in other_site.request_headers[0]


def test_redirect_loop_fails(site: Site) -> None:
    site.redirect("/loop", "/loop")
    with pytest.raises(InputFetchError, match="more than 5 redirects"):
        Fetcher().get(site.url("/loop"), 1000)


def test_body_over_limit(site: Site) -> None:
    site.file("/big", b"x" * 2000, "text/plain")
    with pytest.raises(InputTooLargeError, match="larger than 1000 bytes"):
        Fetcher().get(site.url("/big"), 1000)


def test_body_over_limit_truncated(site: Site) -> None:
    site.file("/big", b"x" * 2000, "text/plain")
    response = Fetcher().get(site.url("/big"), 1000, truncate=True)
    assert len(response.body) == 1000
    assert response.truncated


def test_gzip_content_encoding_is_decoded(site: Site) -> None:
    site.pages["/z"] = Page(
        gzip.compress(b"hello"), headers={"Content-Encoding": "gzip"}
    )
    assert Fetcher().get(site.url("/z"), 1000).body == b"hello"


def test_gzip_bomb_is_stopped() -> None:
    bomb = gzip.compress(b"\0" * 10_000_000)
    with pytest.raises(InputTooLargeError, match="larger than 1000 bytes"):
        gunzip(bomb, 1000, "bomb.gz", truncate=False)


def test_invalid_gzip() -> None:
    with pytest.raises(InputFetchError, match="not valid gzip"):
        gunzip(b"\x1f\x8bnot gzip", 1000, "bad.gz", truncate=False)


def test_closed_port_fails(site: Site) -> None:
    url = site.url("/")
    site.close()
    with pytest.raises(InputFetchError, match=r"Fetching .* failed"):
        Fetcher(timeout=2).get(url, 1000)
