"""The input options of ``lhfleet run``: sources, checks, logins and the guard."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.markup import escape
from rich.table import Table

from lhfleet.cli.common import stderr, stdout
from lhfleet.guard import GuardPolicy, TargetChecker, check_chrome_flags
from lhfleet.inputs import (
    FORMATS,
    Duplicates,
    Fetcher,
    InputPlan,
    InputRequest,
    collect,
    login_headers,
)
from lhfleet.inputs.login import read_login_script
from lhfleet.models import JobSettings, LoginScript

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class InputOptions:
    """The options of ``lhfleet run`` that decide which URLs run and how they load."""

    input_format: str = "auto"
    skip_invalid: bool = False
    dry_run: bool = False
    duplicates: Duplicates = Duplicates.MERGE
    sitemaps: tuple[str, ...] = ()
    crawl: tuple[str, ...] = ()
    max_pages: int | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ignore_robots: bool = False
    cookies: tuple[str, ...] = ()
    basic_auth: str | None = None
    login_script: str | None = None
    guard: bool = False
    allow_targets: tuple[str, ...] = ()

    @property
    def guarded(self) -> bool:
        return self.guard or bool(self.allow_targets)

    def policy(self) -> GuardPolicy | None:
        """Return the guard policy when the guard is on, else None."""
        if not self.guarded:
            return None
        return GuardPolicy.from_cidrs(self.allow_targets)

    def request(self, urls: tuple[str, ...], input_file: str | None) -> InputRequest:
        return InputRequest(
            urls=urls,
            input_file=input_file,
            input_format=self.input_format,
            sitemaps=self.sitemaps,
            crawl=self.crawl,
            max_pages=self.max_pages,
            include=self.include,
            exclude=self.exclude,
            ignore_robots=self.ignore_robots,
            duplicates=self.duplicates,
            skip_invalid=self.skip_invalid,
        )

    def login(self) -> LoginScript | None:
        """Return the login script, read and checked, or None without one."""
        if self.login_script is None:
            return None
        return read_login_script(self.login_script)

    def headers(self, extra: Mapping[str, str]) -> dict[str, str]:
        """Return the extra headers with the cookies and basic auth merged in."""
        return login_headers(extra, self.cookies, self.basic_auth)


_OPTIONS = [
    click.option(
        "--input-format",
        type=click.Choice(FORMATS),
        default="auto",
        show_default=True,
        help="Format of --input: lines, csv (a url column, label, the rest as "
        "metadata) or json; auto goes by extension and content.",
    ),
    click.option(
        "--skip-invalid",
        is_flag=True,
        help="Leave out invalid lines with a warning instead of rejecting the list.",
    ),
    click.option(
        "--dry-run",
        is_flag=True,
        help="Check and normalize the input, print what would run, and stop.",
    ),
    click.option(
        "--duplicates",
        type=click.Choice([mode.value for mode in Duplicates]),
        default=Duplicates.MERGE.value,
        show_default=True,
        help="Lines with the same normalized URL: audit once (merge), each "
        "(keep), or reject the list (error).",
    ),
    click.option(
        "--sitemap",
        "sitemaps",
        multiple=True,
        metavar="URL|FILE",
        help="Audit the pages of a sitemap or sitemap index (gzipped too). Repeatable.",
    ),
    click.option(
        "--crawl",
        multiple=True,
        metavar="URL",
        help="Audit the pages found by following links on URL's origin. Repeatable.",
    ),
    click.option(
        "--max-pages",
        type=int,
        default=None,
        help="Pages taken from sitemaps, and from each crawl [default: 100].",
    ),
    click.option(
        "--include",
        multiple=True,
        metavar="PATTERN",
        help="Only pages whose path matches this glob, such as '/blog/*'. Repeatable.",
    ),
    click.option(
        "--exclude",
        multiple=True,
        metavar="PATTERN",
        help="Leave out pages whose path matches this glob. Repeatable.",
    ),
    click.option(
        "--ignore-robots",
        is_flag=True,
        help="Crawl pages that robots.txt disallows.",
    ),
    click.option(
        "--cookie",
        "cookies",
        multiple=True,
        metavar="NAME=VALUE|@FILE",
        help="A cookie sent with every request; never stored in results. Repeatable.",
    ),
    click.option(
        "--basic-auth",
        default=None,
        metavar="USER:PASSWORD|@FILE",
        help="HTTP basic auth for every request; never stored in results.",
    ),
    click.option(
        "--login-script",
        default=None,
        metavar="FILE",
        help="Puppeteer script (.js, .cjs or .mjs) that signs in through the "
        "run's Chrome before each audit; kept with the job's secrets.",
    ),
    click.option(
        "--guard",
        is_flag=True,
        help="Reject URLs on private, loopback, link-local and metadata addresses, "
        "and keep the browser from reaching them.",
    ),
    click.option(
        "--allow-target",
        "allow_targets",
        multiple=True,
        metavar="CIDR",
        help="With the guard (implies --guard), allow this network, such as "
        "10.1.0.0/16. Repeatable.",
    ),
]


def input_options(command: F) -> F:
    """Add the input options to a command, passed on as ``inputs: InputOptions``."""
    names = [field.name for field in dataclasses.fields(InputOptions)]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = {name: kwargs.pop(name) for name in names}
        values["duplicates"] = Duplicates(values["duplicates"])
        return command(*args, inputs=InputOptions(**values), **kwargs)

    decorated: Any = wrapper
    for option in reversed(_OPTIONS):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def gather_plan(
    urls: tuple[str, ...],
    input_file: str | None,
    inputs: InputOptions,
    headers: Mapping[str, str],
    settings: JobSettings,
) -> InputPlan:
    """Read, check and normalize every URL source; print the notices on stderr.

    Sitemaps and crawls are fetched with the job's headers, and accept
    invalid certificates when the job does.
    """
    policy = inputs.policy()
    if policy is not None:
        check_chrome_flags(settings.chrome_flags)
    verify_tls = not settings.ignore_certificate_errors
    fetcher = Fetcher(policy=policy, headers=headers, verify_tls=verify_tls)
    check = TargetChecker(policy) if policy else None
    plan = collect(inputs.request(urls, input_file), fetcher, check=check)
    for notice in plan.notices:
        stderr.print(f"[yellow]Note:[/yellow] {escape(notice)}", highlight=False)
    return plan


def print_plan(plan: InputPlan, as_json: bool) -> None:
    """Print what a dry run would audit: a table, or a JSON list with ``--json``."""
    if as_json:
        entries = [entry.to_dict() for entry in plan.entries]
        sys.stdout.write(json.dumps(entries, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(title=f"{len(plan.entries)} URLs would run (dry run)")
    for column in ("#", "URL", "source", "as written", "label"):
        table.add_column(column, overflow="fold")
    for number, entry in enumerate(plan.entries, start=1):
        written = "" if entry.line.text == entry.url else entry.line.text
        table.add_row(
            str(number),
            escape(entry.url),
            escape(entry.line.where),
            escape(written),
            escape(entry.line.label or ""),
        )
    stdout.print(table)


def guard_settings(settings: JobSettings, inputs: InputOptions) -> JobSettings:
    """Record in the job's settings that its audits are guarded, and how.

    The settings keep the guard and its allowed networks, never a proxy's
    address: each command that audits the job starts its own guard proxy.
    """
    policy = inputs.policy()
    if policy is None:
        return settings
    check_chrome_flags(settings.chrome_flags)
    networks = tuple(str(network) for network in policy.allowed_networks)
    return dataclasses.replace(settings, guard=True, allowed_networks=networks)
