"""Turning a checked ``POST /api/jobs`` body into a stored, queued job.

The order keeps bad input from storing anything: the settings, runs,
hooks and URLs are checked first, then the token's quota is reserved,
then the job is stored and handed to the runner.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lhfleet import service
from lhfleet.api.runner import JobRunner
from lhfleet.api.schemas import JobRequest, TargetIn
from lhfleet.api.settings import ServerSettings
from lhfleet.errors import (
    InvalidFieldError,
    InvalidSettingError,
    PermissionDenied,
    UsageError,
)
from lhfleet.guard import TargetChecker
from lhfleet.hooks import HookSpec
from lhfleet.inputs import InputPlan, SourceLine, build_plan
from lhfleet.models import Job, JobSettings
from lhfleet.ports import ApiToken, TokenStore

logger = logging.getLogger(__name__)

ADMIN_HOOK_TYPES = ("command", "python")
"""Hook types that run code on the server, so only admin tokens may give them."""


@dataclass
class Submitter:
    """Checks and stores jobs submitted over the API, one token at a time."""

    workspace: service.Workspace
    tokens: TokenStore
    settings: ServerSettings
    runner: JobRunner

    def submit(self, token: ApiToken, request: JobRequest) -> Job:
        """Check the request, reserve the token's quota, store and queue the job."""
        job_settings = self._job_settings(request)
        hooks = self._hooks(token, request.hooks)
        plan = self._plan(request)
        runs = len(plan.entries) * request.runs
        reservation = self.tokens.reserve(token, runs, time.time())
        try:
            job = service.submit(
                self.workspace,
                plan.targets,
                job_settings,
                request.settings.secrets(),
                hooks,
            )
        except BaseException:
            self.tokens.cancel_reservation(reservation)
            raise
        self.tokens.attach(reservation, job.id)
        self.runner.submit(job.id)
        logger.info(
            "job %s: submitted by token %s: %d URLs, %d runs, %d hooks",
            job.id,
            token.id,
            len(plan.entries),
            job.total,
            len(hooks),
        )
        return job

    def _job_settings(self, request: JobRequest) -> JobSettings:
        limit = self.settings.max_runs
        if request.runs > limit:
            raise InvalidFieldError(
                "runs",
                f"runs is {request.runs}; this server allows at most {limit} "
                "runs per URL. Ask for fewer runs.",
            )
        settings = request.settings.job_settings(request.runs)
        policy = self.settings.policy()
        if policy is not None:
            networks = tuple(str(network) for network in policy.allowed_networks)
            settings = dataclasses.replace(
                settings, guard=True, allowed_networks=networks
            )
        try:
            service.validate_settings(settings)
        except InvalidSettingError as error:
            raise InvalidFieldError("settings", str(error)) from error
        return settings

    def _hooks(
        self, token: ApiToken, given: Sequence[dict[str, Any]]
    ) -> list[HookSpec]:
        hooks = []
        for index, data in enumerate(given):
            where = f"hooks[{index}]"
            try:
                hook = HookSpec.from_dict(data, where)
            except InvalidSettingError as error:
                raise InvalidFieldError(where, str(error)) from error
            self._check_hook_type(token, hook, where)
            hooks.append(self._guarded(hook, where))
        return hooks

    def _check_hook_type(self, token: ApiToken, hook: HookSpec, where: str) -> None:
        if hook.type not in self.settings.hook_types:
            raise InvalidFieldError(
                where,
                f"{where}.type is {hook.type!r}, which this server does not accept; "
                f"it accepts {', '.join(self.settings.hook_types)} hooks "
                "(lhfleet serve --allow-hooks).",
            )
        if hook.type in ADMIN_HOOK_TYPES and not token.admin:
            raise PermissionDenied(
                f"{where} is a {hook.type} hook, which runs code on the server; "
                "only an admin token may give one."
            )

    def _guarded(self, hook: HookSpec, where: str) -> HookSpec:
        policy = self.settings.policy()
        if hook.type != "webhook" or policy is None:
            return hook
        assert hook.url is not None
        verdict = TargetChecker(policy).verdict(hook.url)
        if verdict is not None:
            raise InvalidFieldError(
                f"{where}.url",
                f"{where}.url is rejected by the network guard: {verdict.reason}",
            )
        return dataclasses.replace(
            hook, allowed_networks=tuple(self.settings.allowed_networks)
        )

    def _plan(self, request: JobRequest) -> InputPlan:
        lines = [
            _source_line(number, item) for number, item in enumerate(request.urls, 1)
        ]
        policy = self.settings.policy()
        check = TargetChecker(policy) if policy else None
        try:
            return build_plan(
                lines,
                skip_invalid=request.skip_invalid,
                limits=self.settings.input_limits(),
                check=check,
            )
        except UsageError as error:
            message = str(error).replace(
                "pass --skip-invalid", 'send "skip_invalid": true'
            )
            raise InvalidFieldError("urls", message) from error


def _source_line(number: int, item: str | TargetIn) -> SourceLine:
    if isinstance(item, str):
        return SourceLine("urls", number, item.strip(), unit="item")
    return SourceLine("urls", number, item.url.strip(), item.label, item.meta, "item")
