"""Gathering a job's URLs from every source the user named, then checking them.

The sources, in the order their URLs are listed: arguments, the list file
or stdin, sitemaps, then crawls. Sitemaps and crawls share the page limit
``max_pages`` each, and the include and exclude patterns filter both.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import BinaryIO

from lhfleet.errors import InvalidSettingError
from lhfleet.inputs.crawl import Crawler, CrawlOptions
from lhfleet.inputs.fetch import Fetcher
from lhfleet.inputs.limits import InputLimits
from lhfleet.inputs.lists import FORMATS, SourceLine, parse, read_input
from lhfleet.inputs.normalize import URLProblem, normalize_url
from lhfleet.inputs.plan import Check, Duplicates, InputPlan, build_plan
from lhfleet.inputs.sitemaps import read_sitemaps

logger = logging.getLogger(__name__)

DEFAULT_MAX_PAGES = 100


@dataclass(frozen=True)
class InputRequest:
    """The sources of a job's URLs and the options that check them."""

    urls: tuple[str, ...] = ()
    input_file: str | None = None
    input_format: str = "auto"
    sitemaps: tuple[str, ...] = ()
    crawl: tuple[str, ...] = ()
    max_pages: int | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ignore_robots: bool = False
    duplicates: Duplicates = Duplicates.MERGE
    skip_invalid: bool = False

    @property
    def page_limit(self) -> int:
        return self.max_pages or DEFAULT_MAX_PAGES

    @property
    def crawl_options(self) -> CrawlOptions:
        return CrawlOptions(
            self.page_limit, self.include, self.exclude, self.ignore_robots
        )

    def validate(self, limits: InputLimits) -> None:
        """Raise InvalidSettingError for options that do not fit together."""
        discovers = bool(self.sitemaps or self.crawl)
        if (self.include or self.exclude or self.max_pages) and not discovers:
            raise InvalidSettingError(
                "--include, --exclude and --max-pages apply to --sitemap and "
                "--crawl; add one of those or leave them out."
            )
        if self.ignore_robots and not self.crawl:
            raise InvalidSettingError("--ignore-robots applies only to --crawl.")
        if not 1 <= self.page_limit <= limits.max_urls:
            raise InvalidSettingError(
                f"--max-pages is {self.page_limit}; use a number from 1 to "
                f"{limits.max_urls}."
            )
        if self.input_format not in FORMATS:
            raise InvalidSettingError(
                f"--input-format is {self.input_format!r}; use one of "
                f"{', '.join(FORMATS)}."
            )


def collect(
    request: InputRequest,
    fetcher: Fetcher,
    limits: InputLimits | None = None,
    check: Check | None = None,
    stdin: BinaryIO | None = None,
) -> InputPlan:
    """Return the checked, normalized plan of every URL the request names."""
    limits = limits or InputLimits()
    request.validate(limits)
    lines, notices = gather_lines(request, fetcher, limits, stdin)
    plan = build_plan(lines, request.duplicates, request.skip_invalid, limits, check)
    plan.notices[:0] = notices
    return plan


def gather_lines(
    request: InputRequest,
    fetcher: Fetcher,
    limits: InputLimits,
    stdin: BinaryIO | None = None,
) -> tuple[list[SourceLine], list[str]]:
    """Return the lines of every source, unchecked, and notices about them."""
    lines = [
        SourceLine("command line", number, text.strip(), unit="argument")
        for number, text in enumerate(request.urls, start=1)
        if text.strip()
    ]
    notices: list[str] = []
    if request.input_file:
        name, text = read_input(request.input_file, limits, stdin or sys.stdin.buffer)
        lines += parse(name, text, request.input_format)
    if request.sitemaps:
        pages = read_sitemaps(request.sitemaps, fetcher, request.page_limit, limits)
        lines += _filtered(pages.lines, request, notices)
        notices += pages.notices
    for start in request.crawl:
        found = Crawler(fetcher, request.crawl_options).crawl(start)
        lines += found.lines
        notices += found.notices
    return lines, notices


def _filtered(
    lines: list[SourceLine], request: InputRequest, notices: list[str]
) -> list[SourceLine]:
    """Apply --include and --exclude to sitemap pages; invalid ones stay for checks."""
    options = request.crawl_options
    accepted = []
    for line in lines:
        try:
            url = normalize_url(line.text)
        except URLProblem:
            accepted.append(line)
            continue
        if options.accepts(url):
            accepted.append(line)
    dropped = len(lines) - len(accepted)
    if dropped:
        notices.append(f"Left out {dropped} sitemap pages by --include or --exclude.")
    return accepted
