"""A job's URLs: lists, sitemaps and crawls, checked and normalized before queuing.

``collect`` is the entry point for the CLI and the API: it reads every
source an ``InputRequest`` names and returns an ``InputPlan`` of entries to
run, or raises a UsageError naming each bad line.
"""

from __future__ import annotations

from lhfleet.inputs.collect import InputRequest, collect, gather_lines
from lhfleet.inputs.crawl import Crawler, CrawlOptions
from lhfleet.inputs.fetch import Fetcher
from lhfleet.inputs.limits import InputLimits
from lhfleet.inputs.lists import FORMATS, SourceLine, parse, read_input, read_lines
from lhfleet.inputs.login import login_headers
from lhfleet.inputs.normalize import (
    MAX_URL_LENGTH,
    SCHEMES,
    URLProblem,
    check_url,
    normalize_url,
)
from lhfleet.inputs.plan import (
    SHOWN_PROBLEMS,
    Duplicates,
    Entry,
    InputPlan,
    Rejected,
    build_plan,
    validated,
)
from lhfleet.inputs.sitemaps import read_sitemaps

SHOWN_ERRORS = SHOWN_PROBLEMS

__all__ = [
    "FORMATS",
    "MAX_URL_LENGTH",
    "SCHEMES",
    "SHOWN_ERRORS",
    "CrawlOptions",
    "Crawler",
    "Duplicates",
    "Entry",
    "Fetcher",
    "InputLimits",
    "InputPlan",
    "InputRequest",
    "Rejected",
    "SourceLine",
    "URLProblem",
    "build_plan",
    "check_url",
    "collect",
    "gather_lines",
    "login_headers",
    "normalize_url",
    "parse",
    "read_input",
    "read_lines",
    "read_sitemaps",
    "validated",
]
