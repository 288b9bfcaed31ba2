"""Turning the lines of every source into the list of targets a job runs.

Every line is checked and normalized before anything is queued. By default
one invalid line rejects the whole list; with ``skip_invalid`` the invalid
lines are left out with a notice. Duplicates are found after normalization
and, by default, merged into the first occurrence with a notice.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lhfleet.errors import InvalidURLError
from lhfleet.inputs.limits import InputLimits
from lhfleet.inputs.lists import SourceLine
from lhfleet.inputs.normalize import URLProblem, check_url, normalize_url
from lhfleet.models import Target

logger = logging.getLogger(__name__)

SHOWN_PROBLEMS = 20
SHOWN_TEXT = 200

Check = Callable[[str], str | None]
"""Return why a normalized URL must not run (the network guard), or None."""


class Duplicates(enum.StrEnum):
    """The handling of lines whose URLs are equal after normalization."""

    MERGE = "merge"
    """Audit the URL once, with the first line's label and metadata."""

    KEEP = "keep"
    """Audit each line as its own entry, with its own runs and results."""

    ERROR = "error"
    """Reject the list, naming the duplicate lines."""


@dataclass(frozen=True)
class Entry:
    """A URL that will run: its normalized form and the line it came from."""

    url: str
    line: SourceLine
    merged: tuple[SourceLine, ...] = ()
    """Later lines with the same normalized URL, merged into this one."""

    @property
    def target(self) -> Target:
        return Target(self.url, self.line.label, self.line.meta)

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as ``lhfleet run --dry-run --json`` prints it."""
        return {
            "url": self.url,
            "original": self.line.text,
            "source": self.line.where,
            "label": self.line.label,
            "meta": self.line.meta,
            "merged": [line.where for line in self.merged],
        }


@dataclass(frozen=True)
class Rejected:
    """A line left out, and why."""

    line: SourceLine
    reason: str

    def __str__(self) -> str:
        return f"{self.line.where}: {self.line.text[:SHOWN_TEXT]!r} {self.reason}"


@dataclass
class InputPlan:
    """The entries to run, the lines left out, and notices for the user."""

    entries: list[Entry] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    @property
    def targets(self) -> list[Target]:
        return [entry.target for entry in self.entries]


def build_plan(
    lines: Iterable[SourceLine],
    duplicates: Duplicates = Duplicates.MERGE,
    skip_invalid: bool = False,
    limits: InputLimits | None = None,
    check: Check | None = None,
) -> InputPlan:
    """Check, normalize and de-duplicate lines; raise if any is invalid.

    ``check`` runs on each normalized URL, after the syntax checks; the
    network guard's ``TargetChecker`` is one.
    """
    limits = limits or InputLimits()
    plan = InputPlan()
    candidates: list[Entry] = []
    for line in lines:
        reason, url = _judge(line, limits, check)
        if reason is None:
            candidates.append(Entry(url, line))
        else:
            plan.rejected.append(Rejected(line, reason))
    _settle_rejected(plan, skip_invalid)
    plan.entries = _apply_duplicates(candidates, duplicates, plan.notices)
    if not plan.entries:
        raise InvalidURLError(
            "No URLs to audit. Pass URLs as arguments, with -i FILE (one per line, "
            "CSV or JSON), --sitemap or --crawl."
        )
    limits.check_urls(len(plan.entries))
    return plan


def _judge(
    line: SourceLine, limits: InputLimits, check: Check | None
) -> tuple[str | None, str]:
    if line.problem:
        return line.problem, ""
    if len(line.text) > limits.max_line_length:
        return f"is longer than {limits.max_line_length} characters", ""
    try:
        url = normalize_url(line.text)
    except URLProblem as problem:
        return str(problem), ""
    reason = check(url) if check else None
    return reason, url


def _settle_rejected(plan: InputPlan, skip_invalid: bool) -> None:
    if not plan.rejected:
        return
    shown = _shown([str(rejected) for rejected in plan.rejected])
    if not skip_invalid:
        raise InvalidURLError(
            "Invalid URLs; nothing was queued. Fix these lines, or pass "
            "--skip-invalid to leave them out:\n  " + "\n  ".join(shown)
        )
    for rejected in plan.rejected:
        logger.info("skipped invalid input %s", rejected)
    plan.notices.append(
        f"Skipped {len(plan.rejected)} invalid lines:\n  " + "\n  ".join(shown)
    )


def _apply_duplicates(
    candidates: list[Entry], duplicates: Duplicates, notices: list[str]
) -> list[Entry]:
    if duplicates is Duplicates.KEEP:
        return candidates
    first: dict[str, int] = {}
    kept: list[Entry] = []
    repeats: list[str] = []
    for entry in candidates:
        index = first.get(entry.url)
        if index is None:
            first[entry.url] = len(kept)
            kept.append(entry)
            continue
        original = kept[index]
        kept[index] = Entry(original.url, original.line, (*original.merged, entry.line))
        repeats.append(_describe_repeat(entry, original))
    _report_repeats(repeats, duplicates, notices)
    return kept


def _describe_repeat(entry: Entry, original: Entry) -> str:
    text = (
        f"{entry.line.where}: {entry.line.text[:SHOWN_TEXT]!r} is "
        f"{original.url} again, as on {original.line.where}"
    )
    if (entry.line.label, entry.line.meta) != (original.line.label, original.line.meta):
        text += "; its label and metadata are dropped"
    return text


def _report_repeats(
    repeats: list[str], duplicates: Duplicates, notices: list[str]
) -> None:
    if not repeats:
        return
    shown = _shown(repeats)
    if duplicates is Duplicates.ERROR:
        raise InvalidURLError(
            "Duplicate URLs; nothing was queued. Remove these lines, or pass "
            "--duplicates merge or --duplicates keep:\n  " + "\n  ".join(shown)
        )
    notices.append(
        f"Merged {len(repeats)} duplicate URLs, each audited once "
        "(--duplicates keep audits every line):\n  " + "\n  ".join(shown)
    )


def _shown(problems: list[str]) -> list[str]:
    shown = problems[:SHOWN_PROBLEMS]
    more = len(problems) - len(shown)
    if more:
        shown.append(f"... and {more} more")
    return shown


def validated(lines: Iterable[SourceLine]) -> list[str]:
    """Return the URLs as written, or raise InvalidURLError listing every bad line.

    The older entry point: it checks URLs but neither normalizes nor merges
    them; ``build_plan`` does both.
    """
    urls: list[str] = []
    problems: list[str] = []
    for line in lines:
        reason = line.problem or check_url(line.text)
        if reason is None:
            urls.append(line.text)
        else:
            problems.append(f"{line.where}: {line.text[:SHOWN_TEXT]!r} {reason}")
    if problems:
        raise InvalidURLError(
            "Invalid URLs; nothing was queued. Fix these lines and run again:\n  "
            + "\n  ".join(_shown(problems))
        )
    if not urls:
        raise InvalidURLError(
            "No URLs to audit. Pass URLs as arguments or with -i FILE (one per line)."
        )
    return urls
