"""Reading the page URLs of sitemaps and sitemap indexes, from URLs or files.

A sitemap is the XML format of sitemaps.org (``urlset``), an index of
sitemaps (``sitemapindex``), or a text file of one URL per line. Any of
them may be gzipped, which is recognized by its first bytes rather than by
its name. Indexes are followed to their sitemaps, each read once, up to
``MAX_DEPTH`` levels. Reading stops at the page limit. A sitemap listed in
an index that fails to load is skipped with a notice; the sitemap the user
named must load.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from lhfleet.errors import InputFetchError, InvalidSettingError, UsageError
from lhfleet.inputs.fetch import GZIP_MAGIC, Fetcher, gunzip
from lhfleet.inputs.limits import InputLimits
from lhfleet.inputs.lists import SourceLine, read_lines

logger = logging.getLogger(__name__)

MAX_DEPTH = 3
"""Levels of indexes followed; sitemaps.org allows one, some sites nest more."""


@dataclass
class SitemapPages:
    """Page URLs found in sitemaps, and notices about what was left out."""

    lines: list[SourceLine] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    cut: bool = False
    """Whether a sitemap listed more pages than the limit left room for."""


@dataclass(frozen=True)
class _Document:
    location: str
    depth: int


def read_sitemaps(
    locations: Sequence[str],
    fetcher: Fetcher,
    max_pages: int,
    limits: InputLimits | None = None,
) -> SitemapPages:
    """Return up to ``max_pages`` page URLs from sitemaps at URLs or file paths."""
    limits = limits or InputLimits()
    pages = SitemapPages()
    queue = deque(_Document(location, 0) for location in locations)
    seen: set[str] = set(locations)
    while queue and len(pages.lines) < max_pages:
        document = queue.popleft()
        try:
            children = _read_one(document, fetcher, limits, pages, max_pages)
        except UsageError as error:
            if document.depth == 0:
                raise
            pages.notices.append(f"Skipped the sitemap {document.location}: {error}")
            continue
        for child in children:
            if child not in seen:
                seen.add(child)
                queue.append(_Document(child, document.depth + 1))
    if pages.cut or (queue and len(pages.lines) >= max_pages):
        pages.notices.append(
            f"The sitemaps list more than {max_pages} pages; the first {max_pages} "
            "are used. Raise --max-pages to audit more."
        )
    logger.info("read %d page URLs from sitemaps", len(pages.lines))
    return pages


def _read_one(
    document: _Document,
    fetcher: Fetcher,
    limits: InputLimits,
    pages: SitemapPages,
    max_pages: int,
) -> list[str]:
    """Add a sitemap's pages to ``pages`` and return the sitemaps an index lists."""
    data = _load(document.location, fetcher, limits)
    if data[:2] == GZIP_MAGIC:
        data, _cut = gunzip(data, limits.max_sitemap_bytes, document.location, False)
    entries, is_index = parse_sitemap(data, document.location)
    if is_index:
        if document.depth >= MAX_DEPTH:
            pages.notices.append(
                f"Skipped the sitemap index {document.location}: indexes nest more "
                f"than {MAX_DEPTH} levels deep."
            )
            return []
        return [entry.text for entry in entries]
    room = max_pages - len(pages.lines)
    pages.lines.extend(entries[:room])
    if len(entries) > room:
        pages.cut = True
    return []


def _load(location: str, fetcher: Fetcher, limits: InputLimits) -> bytes:
    if "://" in location:
        response = fetcher.get(location, limits.max_sitemap_bytes)
        if not response.ok:
            raise InputFetchError(
                f"Fetching the sitemap {location} returned HTTP {response.status}. "
                "Check the sitemap's URL."
            )
        return response.body
    path = Path(location)
    try:
        with path.open("rb") as handle:
            data = handle.read(limits.max_sitemap_bytes + 1)
    except OSError as error:
        raise InvalidSettingError(
            f"Cannot read the sitemap file {location}: {error.strerror}. "
            "Pass a sitemap URL or the path of a sitemap file."
        ) from error
    if len(data) > limits.max_sitemap_bytes:
        raise InputFetchError(
            f"The sitemap file {location} is larger than {limits.max_sitemap_bytes} "
            "bytes, the sitemaps.org limit. Split it into several sitemaps."
        )
    return data


def parse_sitemap(data: bytes, location: str) -> tuple[list[SourceLine], bool]:
    """Return a sitemap's ``loc`` entries, and whether it is an index of sitemaps."""
    text = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"<"):
        decoded = text.decode("utf-8", "replace")
        return list(read_lines(location, decoded.splitlines())), False
    root = _parse_xml(text, location)
    kind = _local_name(root.tag)
    if kind not in ("urlset", "sitemapindex"):
        raise InputFetchError(
            f"{location} is not a sitemap: its root element is <{kind}>, not "
            "<urlset> or <sitemapindex>."
        )
    child = "url" if kind == "urlset" else "sitemap"
    entries = [
        SourceLine(location, number, loc, unit="entry")
        for number, loc in enumerate(_locs(root, child), start=1)
    ]
    return entries, kind == "sitemapindex"


def _parse_xml(data: bytes, location: str) -> Element:
    try:
        return fromstring(data)
    except DefusedXmlException as error:
        raise InputFetchError(
            f"The sitemap {location} declares XML entities or a DTD ({error!r}), "
            "which lhfleet does not read. Remove them from the sitemap."
        ) from error
    except ParseError as error:
        raise InputFetchError(
            f"The sitemap {location} is not well-formed XML ({error})."
        ) from error


def _locs(root: Element, child: str) -> list[str]:
    locs = []
    for element in root:
        if _local_name(element.tag) != child:
            continue
        for part in element:
            if _local_name(part.tag) == "loc" and part.text and part.text.strip():
                locs.append(part.text.strip())
    return locs


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
