"""URL lists from arguments, files and stdin, checked before anything is queued."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from lhfleet.errors import InvalidURLError

MAX_URL_LENGTH = 8192
SCHEMES = ("http", "https")
SHOWN_ERRORS = 20


@dataclass(frozen=True)
class SourceLine:
    """One URL as the user wrote it, and where."""

    source: str
    line: int
    text: str


def read_lines(source: str, lines: Iterable[str]) -> Iterator[SourceLine]:
    """Yield the non-blank, non-comment lines of a URL list, with line numbers.

    Handles CRLF line ends, a byte-order mark and surrounding whitespace.
    """
    for number, raw in enumerate(lines, start=1):
        text = raw.lstrip("\ufeff").strip() if number == 1 else raw.strip()
        if text and not text.startswith("#"):
            yield SourceLine(source, number, text)


def check_url(text: str) -> str | None:
    """Return why a URL cannot be audited, or None when it can."""
    if len(text) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    if any(character.isspace() for character in text):
        return "contains whitespace; percent-encode spaces as %20"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if not parts.scheme:
        return "has no scheme; write it as http://… or https://…"
    if parts.scheme.lower() not in SCHEMES:
        return f"has the scheme {parts.scheme}:; only http and https can be audited"
    if not parts.hostname:
        return "has no host name"
    if parts.username is not None or parts.password is not None:
        return "contains credentials; pass them with --extra-headers instead"
    if port == 0:
        return "has port 0"
    return None


def validated(lines: Iterable[SourceLine]) -> list[str]:
    """Return the URLs, or raise InvalidURLError listing every bad line."""
    urls: list[str] = []
    problems: list[str] = []
    for line in lines:
        reason = check_url(line.text)
        if reason is None:
            urls.append(line.text)
        else:
            problems.append(f"{line.source}:{line.line}: {line.text[:200]!r} {reason}")
    if problems:
        shown = problems[:SHOWN_ERRORS]
        more = len(problems) - len(shown)
        if more:
            shown.append(f"... and {more} more invalid lines")
        raise InvalidURLError(
            "Invalid URLs; nothing was queued. Fix these lines and run again:\n  "
            + "\n  ".join(shown)
        )
    if not urls:
        raise InvalidURLError(
            "No URLs to audit. Pass URLs as arguments or with -i FILE (one per line)."
        )
    return urls
