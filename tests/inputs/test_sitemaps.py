"""Sitemaps and sitemap indexes, from the test site and from files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lhfleet.errors import InputFetchError, InvalidSettingError
from lhfleet.inputs.fetch import Fetcher
from lhfleet.inputs.sitemaps import SitemapPages, parse_sitemap, read_sitemaps
from tests.inputs.conftest import Site, gzipped, sitemap_index, urlset


def texts(pages: SitemapPages) -> list[str]:
    return [line.text for line in pages.lines]


def test_urlset(site: Site) -> None:
    site.file("/sitemap.xml", urlset(site.url("/a"), site.url("/b")), "application/xml")
    pages = read_sitemaps([site.url("/sitemap.xml")], Fetcher(), 100)
    assert texts(pages) == [site.url("/a"), site.url("/b")]


def test_entries_name_sitemap_and_position(site: Site) -> None:
    site.file("/sitemap.xml", urlset(site.url("/a"), site.url("/b")), "application/xml")
    pages = read_sitemaps([site.url("/sitemap.xml")], Fetcher(), 100)
    assert pages.lines[1].where == f"{site.url('/sitemap.xml')} entry 2"


def test_index_with_gzipped_sitemap(site: Site) -> None:
    site.file(
        "/sitemap.xml",
        sitemap_index(site.url("/pages.xml.gz"), site.url("/more.xml")),
        "application/xml",
    )
    site.file("/pages.xml.gz", gzipped(urlset(site.url("/a"))), "application/gzip")
    site.file("/more.xml", urlset(site.url("/b")), "application/xml")
    pages = read_sitemaps([site.url("/sitemap.xml")], Fetcher(), 100)
    assert texts(pages) == [site.url("/a"), site.url("/b")]


def test_index_child_read_once(site: Site) -> None:
    child = site.url("/pages.xml")
    site.file("/sitemap.xml", sitemap_index(child, child), "application/xml")
    site.file("/pages.xml", urlset(site.url("/a")), "application/xml")
    read_sitemaps([site.url("/sitemap.xml")], Fetcher(), 100)
    assert site.hits.count("/pages.xml") == 1


def test_broken_child_is_skipped(site: Site) -> None:
    site.file(
        "/sitemap.xml",
        sitemap_index(site.url("/missing.xml"), site.url("/pages.xml")),
        "application/xml",
    )
    site.file("/pages.xml", urlset(site.url("/a")), "application/xml")
    pages = read_sitemaps([site.url("/sitemap.xml")], Fetcher(), 100)
    assert texts(pages) == [site.url("/a")]
    assert "HTTP 404" in pages.notices[0]


def test_missing_sitemap_fails(site: Site) -> None:
    with pytest.raises(InputFetchError, match="returned HTTP 404"):
        read_sitemaps([site.url("/sitemap.xml")], Fetcher(), 100)


def test_page_limit(site: Site) -> None:
    urls = [site.url(f"/{n}") for n in range(10)]
    site.file("/sitemap.xml", urlset(*urls), "application/xml")
    pages = read_sitemaps([site.url("/sitemap.xml")], Fetcher(), 3)
    assert texts(pages) == urls[:3]
    assert "more than 3 pages" in pages.notices[0]


def test_gzipped_file(tmp_path: Path) -> None:
    path = tmp_path / "sitemap.xml.gz"
    path.write_bytes(gzipped(urlset("http://a.test/")))
    assert texts(read_sitemaps([str(path)], Fetcher(), 100)) == ["http://a.test/"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidSettingError, match="Cannot read the sitemap file"):
        read_sitemaps([str(tmp_path / "none.xml")], Fetcher(), 100)


def test_text_sitemap() -> None:
    entries, is_index = parse_sitemap(b"http://a.test/\nhttp://b.test/\n", "s.txt")
    assert [entry.text for entry in entries] == ["http://a.test/", "http://b.test/"]
    assert not is_index


def test_loc_whitespace_is_trimmed() -> None:
    entries, _ = parse_sitemap(urlset("\n  http://a.test/  \n"), "s.xml")
    assert entries[0].text == "http://a.test/"


def test_other_xml_is_rejected() -> None:
    with pytest.raises(InputFetchError, match="root element is <rss>"):
        parse_sitemap(b"<rss></rss>", "feed.xml")


def test_malformed_xml_is_rejected() -> None:
    with pytest.raises(InputFetchError, match="not well-formed"):
        parse_sitemap(b"<urlset><url>", "s.xml")


def test_entities_are_rejected() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]>'
        b"<urlset><url><loc>&a;</loc></url></urlset>"
    )
    with pytest.raises(InputFetchError, match="XML entities or a DTD"):
        parse_sitemap(bomb, "s.xml")
