"""Submitting a job: check the input, store the job and its runs, fan out.

The submit handler and ``lhfleet aws submit`` both call ``submit_job``;
the first from Lambda, the second with the user's own credentials.
"""

from __future__ import annotations

import ipaddress
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lhfleet import service
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.fanout import FanOutProgress
from lhfleet.aws.hooks import webhook_spec
from lhfleet.errors import InvalidSettingError, InvalidURLError
from lhfleet.inputs import check_url
from lhfleet.models import Job, JobSecrets, JobSettings, Target

logger = logging.getLogger(__name__)

MAX_HOOKS = 10
MAX_TARGETS = 50_000
"""URLs per job; the sweep and completion read a job's runs in one pass."""
UNSUPPORTED_SETTINGS = ("guard", "allowed_networks")
"""Job settings that the AWS engine rejects: its workers start no guard proxy."""


@dataclass(frozen=True)
class Submission:
    job: Job
    progress: FanOutProgress


def submit_job(
    engine: AwsEngine,
    targets: Sequence[Target],
    settings: JobSettings,
    secrets: JobSecrets,
    hooks: Sequence[str],
    owner: str,
    time_left: Callable[[], float] = lambda: math.inf,
) -> Submission:
    """Validate everything, then store the job and publish its run messages.

    Nothing is written when any input is invalid.
    """
    service.validate_settings(settings)
    check_targets(targets)
    check_hooks(hooks)
    job = engine.store.create_job(settings, secrets, targets, hooks)
    progress = engine.fanout.publish(job.id, owner, time_left)
    return Submission(job, progress)


def check_targets(targets: Sequence[Target]) -> None:
    """Raise InvalidURLError listing the invalid URLs, or for an empty list."""
    if not targets:
        raise InvalidURLError("No URLs to audit. Give at least one URL.")
    if len(targets) > MAX_TARGETS:
        raise InvalidURLError(
            f"The job has {len(targets)} URLs; the AWS engine takes at most "
            f"{MAX_TARGETS} per job. Split the list into several jobs."
        )
    problems = []
    for number, target in enumerate(targets, start=1):
        reason = check_url(target.url)
        if reason is not None:
            problems.append(f"URL {number}: {target.url[:200]!r} {reason}")
    if problems:
        raise InvalidURLError(
            "Invalid URLs; nothing was queued. Fix these and submit again:\n  "
            + "\n  ".join(problems[:20])
        )


def check_hooks(hooks: Sequence[str]) -> None:
    """Raise InvalidSettingError for too many hooks or one that is not http(s)."""
    if len(hooks) > MAX_HOOKS:
        raise InvalidSettingError(
            f"{len(hooks)} hooks given; a job takes at most {MAX_HOOKS}."
        )
    for index, hook in enumerate(hooks):
        reason = check_url(hook) or _link_local(hook)
        if reason is not None:
            raise InvalidSettingError(
                f"Hook {hook[:200]!r} {reason}. Give an http or https URL "
                "that accepts a POST."
            )
        webhook_spec(hook, f"hook {index}")


def _link_local(url: str) -> str | None:
    # The instance metadata service lives on a link-local address; a hook
    # must never make the completion handler send its results there.
    host = (urlsplit(url).hostname or "").strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return "is a link-local address" if address.is_link_local else None


def parse_request(
    event: Mapping[str, Any],
) -> tuple[list[Target], JobSettings, JobSecrets, list[str]]:
    """Read a submit request (the submit handler's event) into domain values.

    The event carries ``urls`` (strings) or ``targets`` (objects with
    ``url``, and optional ``label`` and ``meta``), optional ``settings``
    (the keys of JobSettings), ``extra_headers`` and ``hooks``.
    """
    targets = [Target(str(url)) for url in _list(event, "urls")]
    for entry in _list(event, "targets"):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("url"), str):
            raise InvalidURLError(
                f"Each entry of targets needs a url string; got {entry!r:.200}."
            )
        targets.append(Target(entry["url"], entry.get("label"), entry.get("meta")))
    settings = parse_settings(event.get("settings") or {})
    headers = event.get("extra_headers") or {}
    if not isinstance(headers, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str)
        for key, value in headers.items()
    ):
        raise InvalidSettingError(
            "extra_headers must be an object of header names to string values."
        )
    hooks = [str(hook) for hook in _list(event, "hooks")]
    return targets, settings, JobSecrets(extra_headers=dict(headers)), hooks


def parse_settings(given: Mapping[str, Any]) -> JobSettings:
    """Return JobSettings from a partial mapping, defaults for what is missing."""
    defaults = JobSettings().to_dict()
    for key in UNSUPPORTED_SETTINGS:
        defaults.pop(key)
    unsupported = sorted(set(given) & set(UNSUPPORTED_SETTINGS))
    if unsupported:
        raise InvalidSettingError(
            f"The AWS engine does not support the settings {', '.join(unsupported)}: "
            "its Lambda workers run no network guard proxy. Leave them out, or run "
            "guarded jobs with `lhfleet run --guard` or `lhfleet serve --guard`."
        )
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise InvalidSettingError(
            f"Unknown settings {', '.join(unknown)}; use {', '.join(sorted(defaults))}."
        )
    merged = defaults | dict(given)
    if isinstance(merged["categories"], str):
        merged["categories"] = [
            part.strip() for part in merged["categories"].split(",") if part.strip()
        ]
    if isinstance(merged["chrome_flags"], str):
        merged["chrome_flags"] = merged["chrome_flags"].split()
    try:
        return JobSettings.from_dict(merged)
    except (TypeError, ValueError) as error:
        raise InvalidSettingError(
            f"Invalid settings {dict(given)!r:.300}: {error}. Numbers must be "
            "numbers and lists must be lists."
        ) from error


def _list(event: Mapping[str, Any], key: str) -> list[Any]:
    value = event.get(key) or []
    if not isinstance(value, list):
        raise InvalidSettingError(f"{key} must be a list; got {type(value).__name__}.")
    return value
