"""Commands of the server side: serve, token, submit, hooks; and ``--server``.

``lhfleet serve`` runs the HTTP API and dashboard, and ``lhfleet token``
manages its tokens in the job store. ``lhfleet submit`` sends a job to a
server and follows it. ``lhfleet hooks`` shows a job's hook deliveries,
here or on a server. ``server_options`` gives ``status`` and ``results``
their ``--server`` and ``--token``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.table import Table

from lhfleet import console as views
from lhfleet import engines, service
from lhfleet.cli.common import (
    EXIT_HELP,
    data_dir_option,
    fixed_slots,
    handle_errors,
    open_workspace,
    parse_concurrency,
    stderr,
    stdout,
)
from lhfleet.errors import InvalidSettingError, JobInterrupted
from lhfleet.hooks import deliveries_document, parse_hook_option
from lhfleet.models import CATEGORIES, PRESETS
from lhfleet.ports import Quota, TokenStore
from lhfleet.results import urls_without_valid_run

if TYPE_CHECKING:
    from lhfleet.client import LhfleetClient

F = TypeVar("F", bound=Callable[..., Any])

INSTALL_SERVER = "Install the server extra: pip install 'lhfleet[server]'."
SERVER_ENV = "LHFLEET_SERVER"
TOKEN_ENV = "LHFLEET_TOKEN"  # noqa: S105 - the variable's name, not a token


@dataclass(frozen=True)
class ServerOptions:
    """The source of a command's job: this data directory, or a server."""

    server: str | None
    token: str | None

    def client(self) -> LhfleetClient:
        try:
            from lhfleet.client import LhfleetClient  # noqa: PLC0415 - needs httpx
        except ImportError as error:
            raise InvalidSettingError(
                f"--server needs httpx. {INSTALL_SERVER}"
            ) from error
        assert self.server is not None
        return LhfleetClient(self.server, self.token)


def server_options(command: F) -> F:
    """Add --server and --token, passed on as ``remote`` (server None: local)."""

    @functools.wraps(command)
    def wrapper(
        *args: Any, server: str | None, token: str | None, **kwargs: Any
    ) -> Any:
        return command(*args, remote=ServerOptions(server, token), **kwargs)

    decorated: Any = click.option(
        "--token",
        envvar=TOKEN_ENV,
        default=None,
        help=f"API token of the server [default: ${TOKEN_ENV}].",
    )(wrapper)
    decorated = click.option(
        "--server",
        envvar=SERVER_ENV,
        default=None,
        help=f"URL of an lhfleet server to read from [default: ${SERVER_ENV}].",
    )(decorated)
    return decorated  # type: ignore[no-any-return]


def store_options(command: F) -> F:
    """Add --store and --data-dir: where the server's tokens and jobs live."""
    decorated = click.option(
        "--store",
        default=None,
        help="Job store URL, such as postgresql://HOST/lhfleet [default: "
        "$LHFLEET_STORE, or SQLite in the data directory].",
    )(command)
    return data_dir_option(decorated)


def _workspace(store: str | None, data_dir: Path | None) -> service.Workspace:
    spec = engines.EngineSpec.resolve(engine="local", store=store, data_dir=data_dir)
    return open_workspace(data_dir, spec)


@click.command(epilog=EXIT_HELP)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
)
@click.option("--port", default=8000, show_default=True, help="TCP port to listen on.")
@click.option(
    "--concurrency",
    default="auto",
    show_default=True,
    help="Audits at once within a job: a number, or auto (one per two cores).",
)
@click.option(
    "--parallel-jobs",
    default=1,
    show_default=True,
    help="Jobs run at once; the others wait in order of submission.",
)
@click.option("--max-urls", default=1000, show_default=True, help="URLs per job.")
@click.option("--max-runs", default=20, show_default=True, help="Runs per URL.")
@click.option(
    "--max-body",
    default=1024 * 1024,
    show_default=True,
    help="Bytes of one request body.",
)
@click.option(
    "--guard",
    is_flag=True,
    help="Reject job and webhook URLs on private, loopback and metadata addresses, "
    "and send the browser through the guard proxy.",
)
@click.option(
    "--allow-target",
    "allow_targets",
    multiple=True,
    help="A network (CIDR) the guard lets through; turns the guard on.",
)
@click.option(
    "--allow-hooks",
    default="webhook",
    show_default=True,
    help="Hook types the API accepts, comma-separated: webhook, command, python. "
    "command and python hooks also need an admin token.",
)
@click.option(
    "--reports",
    default=None,
    help="Report folder [default: $LHFLEET_REPORTS, or reports/ in the data "
    "directory].",
)
@click.option("--no-access-log", is_flag=True, help="Do not log each request.")
@store_options
@handle_errors
def serve(
    host: str,
    port: int,
    concurrency: str,
    parallel_jobs: int,
    max_urls: int,
    max_runs: int,
    max_body: int,
    guard: bool,
    allow_targets: tuple[str, ...],
    allow_hooks: str,
    reports: str | None,
    no_access_log: bool,
    store: str | None,
    data_dir: Path | None,
) -> None:
    """Serve the HTTP API and the dashboard, and run submitted jobs here."""
    try:
        import uvicorn  # noqa: PLC0415 - the server extra

        from lhfleet.api.app import create_app  # noqa: PLC0415
        from lhfleet.api.settings import ServerSettings  # noqa: PLC0415
        from lhfleet.api.state import build_state  # noqa: PLC0415
    except ImportError as error:
        raise InvalidSettingError(
            f"lhfleet serve needs FastAPI and uvicorn. {INSTALL_SERVER}"
        ) from error
    from lhfleet.runtime import find_runtime  # noqa: PLC0415

    settings = ServerSettings(
        concurrency=fixed_slots(parse_concurrency(concurrency)),
        parallel_jobs=parallel_jobs,
        max_urls=max_urls,
        max_runs=max_runs,
        max_body_bytes=max_body,
        guard=guard,
        allowed_networks=allow_targets,
        hook_types=tuple(
            part.strip() for part in allow_hooks.split(",") if part.strip()
        ),
    )
    spec = engines.EngineSpec.resolve(
        engine="local", store=store, reports=reports, data_dir=data_dir
    )
    workspace = open_workspace(data_dir, spec)
    state = build_state(workspace, settings, find_runtime())
    stderr.print(
        f"lhfleet serves http://{host}:{port}/ (data in {spec.data_dir}); "
        "stop it with Ctrl-C."
    )
    uvicorn.run(create_app(state), host=host, port=port, access_log=not no_access_log)


@click.group()
def token() -> None:
    """Create, list, revoke and limit the API tokens of lhfleet serve."""


def _quota_value(text: str | None, option: str) -> int | None:
    if text is None or text.lower() == "none":
        return None
    if not text.isdigit() or int(text) < 1:
        raise InvalidSettingError(
            f"{option} is {text!r}; use a whole number of 1 or more, or none."
        )
    return int(text)


@token.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="May see every job and manage tokens.")
@click.option("--max-running-jobs", default=None, help="Jobs running at once, or none.")
@click.option("--max-runs-per-day", default=None, help="Runs per UTC day, or none.")
@store_options
@handle_errors
def token_create(
    name: str,
    admin: bool,
    max_running_jobs: str | None,
    max_runs_per_day: str | None,
    store: str | None,
    data_dir: Path | None,
) -> None:
    """Create a token; print its secret on stdout, once."""
    from lhfleet.api.tokens import issue_token  # noqa: PLC0415

    quota = Quota(
        _quota_value(max_running_jobs, "--max-running-jobs"),
        _quota_value(max_runs_per_day, "--max-runs-per-day"),
    )
    workspace = _workspace(store, data_dir)
    created, secret = issue_token(_tokens(workspace), name, admin, quota)
    stderr.print(
        f"Created token {created.name!r} ({created.id}). Its secret is shown only "
        "now; keep it, for example in LHFLEET_TOKEN:"
    )
    sys.stdout.write(secret + "\n")


def _tokens(workspace: service.Workspace) -> TokenStore:
    from lhfleet.store.sql import SqlJobStore  # noqa: PLC0415
    from lhfleet.store.tokens import SqlTokenStore  # noqa: PLC0415

    if not isinstance(workspace.store, SqlJobStore):
        raise InvalidSettingError("API tokens need the SQL job store.")
    return SqlTokenStore.beside(workspace.store)


@token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the tokens as JSON.")
@store_options
@handle_errors
def token_list(as_json: bool, store: str | None, data_dir: Path | None) -> None:
    """List the tokens, revoked ones included; never their secrets."""
    from lhfleet.api.tokens import token_document  # noqa: PLC0415

    tokens = _tokens(_workspace(store, data_dir)).list_tokens()
    if as_json:
        documents = [token_document(item) for item in tokens]
        sys.stdout.write(json.dumps(documents, indent=2) + "\n")
        return
    table = Table(title="API tokens")
    for column in ("name", "id", "admin", "state", "running jobs", "runs per day"):
        table.add_column(column)
    for item in tokens:
        table.add_row(
            item.name,
            item.id,
            "yes" if item.admin else "",
            "active" if item.active else "revoked",
            str(item.quota.max_running_jobs or "no limit"),
            str(item.quota.max_runs_per_day or "no limit"),
        )
    stdout.print(table)


@token.command("revoke")
@click.argument("name")
@store_options
@handle_errors
def token_revoke(name: str, store: str | None, data_dir: Path | None) -> None:
    """Revoke a token; a running server refuses it within a few seconds."""
    import time  # noqa: PLC0415

    revoked = _tokens(_workspace(store, data_dir)).revoke(name, time.time())
    stdout.print(f"Revoked token {revoked.name!r} ({revoked.id}).")


@token.command("quota")
@click.argument("name")
@click.option("--max-running-jobs", default=None, help="Jobs running at once, or none.")
@click.option("--max-runs-per-day", default=None, help="Runs per UTC day, or none.")
@store_options
@handle_errors
def token_quota(
    name: str,
    max_running_jobs: str | None,
    max_runs_per_day: str | None,
    store: str | None,
    data_dir: Path | None,
) -> None:
    """Set a token's quotas; an option left out or given as none is no limit."""
    from lhfleet.api.tokens import check_quota  # noqa: PLC0415

    quota = Quota(
        _quota_value(max_running_jobs, "--max-running-jobs"),
        _quota_value(max_runs_per_day, "--max-runs-per-day"),
    )
    check_quota(quota)
    changed = _tokens(_workspace(store, data_dir)).set_quota(name, quota)
    stdout.print(
        f"Token {changed.name!r}: {quota.max_running_jobs or 'no limit on'} jobs at "
        f"once, {quota.max_runs_per_day or 'no limit on'} runs per day."
    )


@click.command("hooks")
@click.argument("job_id")
@click.option("--redeliver", is_flag=True, help="Deliver the failed hooks again.")
@click.option("--json", "as_json", is_flag=True, help="Print the deliveries as JSON.")
@server_options
@store_options
@handle_errors
def hooks(
    job_id: str,
    redeliver: bool,
    as_json: bool,
    remote: ServerOptions,
    store: str | None,
    data_dir: Path | None,
) -> None:
    """Show a job's hook deliveries and every attempt; redeliver failed ones."""
    if remote.server:
        with remote.client() as client:
            if redeliver:
                count = client.redeliver(job_id)["redelivering"]
                stderr.print(
                    f"Redelivering {count} hooks of job {job_id} on the server."
                )
            deliveries = client.hooks(job_id)["deliveries"]
    else:
        deliveries = _local_deliveries(job_id, redeliver, store, data_dir)
    if as_json:
        sys.stdout.write(json.dumps(deliveries, indent=2) + "\n")
        return
    stdout.print(deliveries_table(job_id, deliveries))


def _local_deliveries(
    job_id: str, redeliver: bool, store: str | None, data_dir: Path | None
) -> list[dict[str, Any]]:
    workspace = _workspace(store, data_dir)
    workspace.store.get_job(job_id)
    if workspace.ledger is None:
        return []
    if redeliver:
        count = workspace.ledger.redeliver_failed(job_id)
        stderr.print(f"Redelivering {count} hooks of job {job_id}.")
        service.deliver_owed_hooks(workspace, job_id)
    return deliveries_document(workspace.ledger, job_id)


def deliveries_table(job_id: str, deliveries: list[dict[str, Any]]) -> Table:
    """Return one row per delivery attempt (one row for a hook not yet tried)."""
    table = Table(title=f"Hooks of job {job_id}")
    for column in ("hook", "state", "attempt", "result", "error"):
        table.add_column(column, overflow="fold")
    for delivery in deliveries:
        hook = delivery["hook"]
        label = (
            f"{hook['type']} {hook.get('url') or hook.get('run') or hook.get('target')}"
        )
        attempts = delivery["attempts"] or [None]
        for attempt in attempts:
            table.add_row(
                label,
                delivery["state"],
                str(attempt["number"]) if attempt else "",
                _attempt_result(attempt),
                (attempt or {}).get("error") or "",
            )
    return table


def _attempt_result(attempt: dict[str, Any] | None) -> str:
    if attempt is None:
        return "not tried"
    status = attempt["status_code"]
    outcome = "ok" if attempt["ok"] else "failed"
    return f"{outcome} ({status})" if status is not None else outcome


@click.command(epilog=EXIT_HELP)
@click.argument("urls", nargs=-1)
@click.option(
    "-i", "--input", "input_file", help="Read URLs from a file ('-' for stdin)."
)
@click.option("--runs", default=3, show_default=True, help="Runs per URL.")
@click.option(
    "--preset", type=click.Choice(PRESETS), default="mobile", show_default=True
)
@click.option(
    "--categories",
    default=",".join(CATEGORIES),
    show_default=True,
    help="Comma-separated Lighthouse categories.",
)
@click.option("--timeout", default=120.0, show_default=True, help="Seconds per run.")
@click.option("--retries", default=2, show_default=True, help="Extra attempts per run.")
@click.option("--chrome-flags", default="", help="Extra Chrome flags, space-separated.")
@click.option(
    "--hook",
    "hook_options",
    multiple=True,
    help="A completion hook: webhook:URL, command:COMMAND, python:MODULE:FUNCTION "
    "or a JSON object; repeat for more.",
)
@click.option("--skip-invalid", is_flag=True, help="Leave invalid URLs out.")
@click.option("--detach", is_flag=True, help="Print the job id and return at once.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@server_options
@handle_errors
def submit(
    urls: tuple[str, ...],
    input_file: str | None,
    runs: int,
    preset: str,
    categories: str,
    timeout: float,
    retries: int,
    chrome_flags: str,
    hook_options: tuple[str, ...],
    skip_invalid: bool,
    detach: bool,
    as_json: bool,
    remote: ServerOptions,
) -> None:
    """Submit a job to an lhfleet server and follow it to the end."""
    if not remote.server:
        raise InvalidSettingError(
            f"lhfleet submit needs --server URL (or {SERVER_ENV}); to run a job "
            "here, use lhfleet run."
        )
    request = {
        "urls": _request_urls(urls, input_file),
        "runs": runs,
        "skip_invalid": skip_invalid,
        "settings": {
            "preset": preset,
            "categories": [
                part.strip() for part in categories.split(",") if part.strip()
            ],
            "timeout": timeout,
            "retries": retries,
            "chrome_flags": chrome_flags.split(),
        },
        "hooks": [parse_hook_option(text).to_dict() for text in hook_options],
    }
    with remote.client() as client:
        job = client.submit(request)
        stderr.print(
            f"Job [bold]{job['id']}[/bold]: {job['counts']['total']} runs on "
            f"{remote.server}"
        )
        if detach:
            stdout.print(job["id"])
            return
        _follow_and_report(client, job["id"], as_json)


def _request_urls(urls: tuple[str, ...], input_file: str | None) -> list[Any]:
    """Return the URLs to send: arguments, then the list file's lines or items."""
    from lhfleet.inputs import InputLimits, parse, read_input  # noqa: PLC0415

    items: list[Any] = [text.strip() for text in urls if text.strip()]
    if input_file:
        name, text = read_input(input_file, InputLimits(), sys.stdin.buffer)
        for line in parse(name, text):
            if line.label or line.meta:
                items.append({"url": line.text, "label": line.label, "meta": line.meta})
            else:
                items.append(line.text)
    if not items:
        raise InvalidSettingError(
            "No URLs given. Pass URLs as arguments or with -i FILE."
        )
    return items


def _follow_and_report(client: LhfleetClient, job_id: str, as_json: bool) -> None:
    from lhfleet.client import follow  # noqa: PLC0415

    try:
        follow(client, job_id, stderr)
    except KeyboardInterrupt:
        raise JobInterrupted(
            f"Stopped following job {job_id}; it goes on on the server. Read it "
            f"with `lhfleet status {job_id} --server {client.server}`."
        ) from None
    document = client.results(job_id)
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        stdout.print(views.results_table(document))
    missing = urls_without_valid_run(document)
    if missing:
        stderr.print(f"[red]{len(missing)} URLs have no valid run[/red].")
        sys.exit(1)
