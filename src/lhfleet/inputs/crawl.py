"""Finding the pages of a site by following its links from a start URL.

The crawl is breadth-first and stays on the start URL's origin (scheme,
host and port); links to other origins are counted and left out. It obeys
robots.txt (RFC 9309) for the user agent ``lhfleet`` unless
``ignore_robots`` is set:
a robots.txt answered with 4xx allows everything, and one that fails to
load (5xx or a network error) disallows everything. A ``Crawl-delay`` is
honoured up to ``max_crawl_delay`` seconds.

``include`` and ``exclude`` are shell-style patterns (``*`` matches ``/``
too) matched against a URL's path and query, or against the whole URL when
the pattern contains ``://``. A page is followed and listed when it matches
an include pattern (or none are given) and no exclude pattern. The start
URL is always fetched to find links, and listed only when it passes.
"""

from __future__ import annotations

import fnmatch
import logging
import time
import urllib.robotparser
from collections import Counter, deque
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from lhfleet.errors import InvalidSettingError, UsageError
from lhfleet.inputs.fetch import Fetcher, origin
from lhfleet.inputs.lists import SourceLine
from lhfleet.inputs.normalize import URLProblem, normalize_url

logger = logging.getLogger(__name__)

ROBOTS_AGENT = "lhfleet"
HTML_TYPES = ("text/html", "application/xhtml+xml")
MAX_PAGE_BYTES = 5 * 1024 * 1024
MAX_ROBOTS_BYTES = 500 * 1024
"""RFC 9309 sets a crawler's parsing limit for robots.txt at 500 KiB or more."""


@dataclass(frozen=True)
class CrawlOptions:
    """How far and where a crawl goes."""

    max_pages: int = 50
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ignore_robots: bool = False
    max_crawl_delay: float = 5.0

    @property
    def max_fetches(self) -> int:
        """Pages fetched at most, listed or not, so that filters cannot loop long."""
        return 2 * self.max_pages + 20

    def accepts(self, url: str) -> bool:
        """Return whether the include and exclude patterns let a URL through."""
        if self.include and not any(_matches(url, p) for p in self.include):
            return False
        return not any(_matches(url, pattern) for pattern in self.exclude)


def _matches(url: str, pattern: str) -> bool:
    if "://" in pattern:
        return fnmatch.fnmatchcase(url, pattern)
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return fnmatch.fnmatchcase(path, pattern)


@dataclass
class CrawlResult:
    """The pages found, in the order found, and what was left out."""

    lines: list[SourceLine] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class RobotsRules:
    """A site's robots.txt rules, or one verdict for every URL."""

    parser: urllib.robotparser.RobotFileParser | None
    allow: bool = True
    """The verdict for every URL when there is no parser."""

    def allows(self, url: str) -> bool:
        if self.parser is None:
            return self.allow
        return self.parser.can_fetch(ROBOTS_AGENT, url)

    def crawl_delay(self) -> float | None:
        if self.parser is None:
            return None
        delay = self.parser.crawl_delay(ROBOTS_AGENT)
        return float(delay) if delay else None


class Crawler:
    """Crawls one origin at a time with a ``Fetcher``."""

    def __init__(self, fetcher: Fetcher, options: CrawlOptions) -> None:
        self.fetcher = fetcher
        self.options = options

    def crawl(self, start: str) -> CrawlResult:
        """Return the same-origin pages reachable from ``start``."""
        start_url = _start_url(start)
        robots = self._robots(start_url)
        result = CrawlResult()
        queue, seen = deque([start_url]), {start_url}
        fetches = 0
        logger.info("crawl of %s started", start_url)
        while queue and len(result.lines) < self.options.max_pages:
            if fetches >= self.options.max_fetches:
                result.left_out["over the fetch budget"] += len(queue)
                break
            url = queue.popleft()
            if not robots.allows(url):
                result.left_out["disallowed by robots.txt"] += 1
                continue
            self._wait(robots, fetches)
            fetches += 1
            for link in self._visit(url, start_url, result, seen):
                seen.add(link)
                queue.append(link)
        self._summarize(start_url, result, queue, fetches)
        return result

    def _visit(
        self, url: str, start: str, result: CrawlResult, seen: set[str]
    ) -> list[str]:
        """Fetch a page, list it if it passes, and return its new links to follow."""
        try:
            response = self.fetcher.get(url, MAX_PAGE_BYTES, truncate=True)
        except UsageError as error:
            logger.info("crawl of %s: %s failed: %s", start, url, error)
            result.left_out["failed to load"] += 1
            return []
        final = response.url
        if origin(final) != origin(start):
            result.left_out["redirected to another origin"] += 1
            return []
        if final != url and final in seen:
            return []
        seen.add(final)
        reason = _unusable(response.status, response.content_type)
        if reason:
            result.left_out[reason] += 1
            return []
        if not self.options.accepts(final):
            result.left_out["filtered out by --include or --exclude"] += 1
        else:
            number = len(result.lines) + 1
            line = SourceLine(f"crawl of {start}", number, final, unit="page")
            result.lines.append(line)
        return self._links(response.body, final, start, result, seen)

    def _links(
        self, body: bytes, page: str, start: str, result: CrawlResult, seen: set[str]
    ) -> list[str]:
        links: list[str] = []
        for href in extract_links(body.decode("utf-8", "replace"), page):
            try:
                url = normalize_url(href)
            except URLProblem:
                continue
            if url in seen or url in links:
                continue
            if origin(url) != origin(start):
                result.left_out["links to other origins"] += 1
            elif not self.options.accepts(url):
                result.left_out["filtered out by --include or --exclude"] += 1
            else:
                links.append(url)
        return links

    def _robots(self, start: str) -> RobotsRules:
        if self.options.ignore_robots:
            return RobotsRules(None, allow=True)
        robots_url = origin(start) + "/robots.txt"
        try:
            response = self.fetcher.get(robots_url, MAX_ROBOTS_BYTES, truncate=True)
        except UsageError as error:
            logger.warning("robots.txt of %s failed to load: %s", start, error)
            return RobotsRules(None, allow=False)
        if response.status >= 500:
            logger.warning("robots.txt of %s returned HTTP %d", start, response.status)
            return RobotsRules(None, allow=False)
        if not response.ok:
            return RobotsRules(None, allow=True)
        parser = urllib.robotparser.RobotFileParser(robots_url)
        parser.parse(response.body.decode("utf-8", "replace").splitlines())
        return RobotsRules(parser)

    def _wait(self, robots: RobotsRules, fetches: int) -> None:
        delay = robots.crawl_delay() if fetches else None
        if delay:
            time.sleep(min(delay, self.options.max_crawl_delay))

    def _summarize(
        self, start: str, result: CrawlResult, queue: deque[str], fetches: int
    ) -> None:
        text = f"Crawl of {start}: {len(result.lines)} pages found in {fetches} fetches"
        if len(result.lines) >= self.options.max_pages and queue:
            text += f", stopped at --max-pages {self.options.max_pages}"
        if result.left_out:
            counts = ", ".join(f"{n} {why}" for why, n in result.left_out.items())
            text += f"; left out: {counts}"
        result.notices.append(text + ".")
        logger.info("%s", text)


def _start_url(start: str) -> str:
    try:
        return normalize_url(start)
    except URLProblem as problem:
        raise InvalidSettingError(
            f"--crawl {start[:200]!r} cannot be crawled: it {problem}."
        ) from problem


def _unusable(status: int, content_type: str) -> str | None:
    if not 200 <= status < 300:
        return f"answered HTTP {status}"
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media not in HTML_TYPES:
        return "not HTML"
    return None


class _LinkParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if not href:
            return
        if tag == "base" and self.base is None:
            self.base = href.strip()
        elif tag in ("a", "area"):
            self.hrefs.append(href.strip())


def extract_links(html: str, page: str) -> list[str]:
    """Return the absolute URLs of a page's ``<a>`` and ``<area>`` links."""
    parser = _LinkParser()
    parser.feed(html)
    parser.close()
    base = _join(page, parser.base) if parser.base else page
    links = [_join(base or page, href) for href in parser.hrefs]
    return [link for link in links if link]


def _join(base: str, href: str) -> str | None:
    try:
        return urljoin(base, href)
    except ValueError:
        return None
