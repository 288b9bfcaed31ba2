"""Crawling the test site: origins, robots.txt, patterns and limits."""

from __future__ import annotations

import re

import pytest

from lhfleet.errors import InvalidSettingError
from lhfleet.inputs.crawl import Crawler, CrawlOptions, extract_links
from lhfleet.inputs.fetch import Fetcher
from tests.inputs.conftest import Site


def crawl(site: Site, options: CrawlOptions | None = None) -> list[str]:
    crawler = Crawler(Fetcher(), options or CrawlOptions())
    return [line.text for line in crawler.crawl(site.url("/")).lines]


def notices(site: Site, options: CrawlOptions | None = None) -> str:
    crawler = Crawler(Fetcher(), options or CrawlOptions())
    return crawler.crawl(site.url("/")).notices[0]


@pytest.fixture
def small_site(site: Site, other_site: Site) -> Site:
    """A home page linking to pages, a PDF, an off-origin page and a private area."""
    site.html("/", "/about", "/blog/", "/report.pdf", other_site.url("/elsewhere"))
    site.html("/about", "/", "/about#team", "/private/admin")
    site.html("/blog/", "/blog/one", "/blog/two?page=2")
    site.html("/blog/one")
    site.html("/blog/two?page=2")
    site.html("/private/admin")
    site.file("/report.pdf", b"%PDF-1.4", "application/pdf")
    site.file("/robots.txt", b"User-agent: *\nDisallow: /private/\n", "text/plain")
    other_site.html("/elsewhere")
    return site


def test_crawl_finds_same_origin_pages(small_site: Site) -> None:
    assert crawl(small_site) == [
        small_site.url(path)
        for path in ("/", "/about", "/blog/", "/blog/one", "/blog/two?page=2")
    ]


def test_crawl_never_fetches_other_origins(small_site: Site, other_site: Site) -> None:
    crawl(small_site)
    assert other_site.hits == []


def test_crawl_respects_robots(small_site: Site) -> None:
    crawl(small_site)
    assert "/private/admin" not in small_site.hits


def test_crawl_ignores_robots_when_told(small_site: Site) -> None:
    assert small_site.url("/private/admin") in crawl(
        small_site, CrawlOptions(ignore_robots=True)
    )


def test_crawl_summary(small_site: Site) -> None:
    text = notices(small_site)
    assert "5 pages found" in text
    assert "1 disallowed by robots.txt" in text
    assert "1 links to other origins" in text
    assert "1 not HTML" in text


def test_crawl_include(small_site: Site) -> None:
    assert crawl(small_site, CrawlOptions(include=("/blog/*",))) == [
        small_site.url("/blog/"),
        small_site.url("/blog/one"),
        small_site.url("/blog/two?page=2"),
    ]


def test_crawl_exclude(small_site: Site) -> None:
    found = crawl(small_site, CrawlOptions(exclude=("/blog/*",)))
    assert found == [small_site.url("/"), small_site.url("/about")]


def test_crawl_exclude_with_query(small_site: Site) -> None:
    found = crawl(small_site, CrawlOptions(exclude=("*?page=*",)))
    assert small_site.url("/blog/two?page=2") not in found


def test_crawl_max_pages(small_site: Site) -> None:
    assert len(crawl(small_site, CrawlOptions(max_pages=2))) == 2
    assert "stopped at --max-pages 2" in notices(small_site, CrawlOptions(max_pages=2))


def test_robots_server_error_disallows_all(site: Site) -> None:
    site.html("/", "/a")
    site.file("/robots.txt", b"", "text/plain")
    site.pages["/robots.txt"].status = 503
    assert crawl(site) == []


def test_robots_missing_allows_all(site: Site) -> None:
    site.html("/", "/a")
    site.html("/a")
    assert crawl(site) == [site.url("/"), site.url("/a")]


def test_redirect_off_origin_is_left_out(site: Site, other_site: Site) -> None:
    site.html("/", "/out")
    site.redirect("/out", other_site.url("/landing"))
    other_site.html("/landing")
    assert crawl(site) == [site.url("/")]


def test_broken_link_is_left_out(site: Site) -> None:
    site.html("/", "/missing")
    assert crawl(site) == [site.url("/")]


def test_invalid_start() -> None:
    with pytest.raises(
        InvalidSettingError, match=re.escape("--crawl 'ftp://a.test/' cannot")
    ):
        Crawler(Fetcher(), CrawlOptions()).crawl("ftp://a.test/")


def test_extract_links_uses_base() -> None:
    html = '<base href="/docs/"><a href="intro">x</a><area href="/map">'
    assert extract_links(html, "http://a.test/page") == [
        "http://a.test/docs/intro",
        "http://a.test/map",
    ]


def test_extract_links_skips_broken_href() -> None:
    assert extract_links('<a href="http://[x">x</a>', "http://a.test/") == []
