"""The server's own settings: limits, the guard, hooks allowed, job slots."""

from __future__ import annotations

from dataclasses import dataclass

from lhfleet.errors import InvalidSettingError
from lhfleet.guard import GuardPolicy
from lhfleet.hooks import HOOK_TYPES
from lhfleet.inputs import InputLimits
from lhfleet.inputs.limits import MIB
from lhfleet.service import MAX_RUNS

DEFAULT_MAX_URLS = 1000
DEFAULT_MAX_RUNS = 20
DEFAULT_MAX_BODY = 1 * MIB


@dataclass(frozen=True)
class ServerSettings:
    """Settings of ``lhfleet serve``: how it runs jobs, what one request may ask."""

    concurrency: int = 1
    """Audits at once within one job."""

    parallel_jobs: int = 1
    """Jobs driven at once; the others wait in order of submission."""

    max_urls: int = DEFAULT_MAX_URLS
    """URLs per job, after duplicates are merged."""

    max_runs: int = DEFAULT_MAX_RUNS
    """Runs per URL."""

    max_body_bytes: int = DEFAULT_MAX_BODY
    """Bytes of one request body."""

    guard: bool = False
    """Check job URLs and webhook URLs with the network guard, and send the
    browser through the guard proxy."""

    allowed_networks: tuple[str, ...] = ()
    """Networks the guard lets through besides public addresses."""

    hook_types: tuple[str, ...] = ("webhook",)
    """Hook types the API accepts; command and python hooks also need an
    admin token, because they run code on this host."""

    token_cache_seconds: float = 2.0
    """How long a checked token is trusted without reading the store; a token
    revoked from another process is refused after at most this long."""

    progress_interval: float = 0.5
    """Seconds between two reads of a watched job's progress."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise InvalidSettingError naming the first setting out of range."""
        for name, value, low, high in (
            ("--concurrency", self.concurrency, 1, 64),
            ("--parallel-jobs", self.parallel_jobs, 1, 64),
            ("--max-urls", self.max_urls, 1, InputLimits().max_urls),
            ("--max-runs", self.max_runs, 1, MAX_RUNS),
            ("--max-body", self.max_body_bytes, 1024, InputLimits().max_input_bytes),
        ):
            if not low <= value <= high:
                raise InvalidSettingError(
                    f"{name} is {value}; use a number from {low} to {high}."
                )
        unknown = [kind for kind in self.hook_types if kind not in HOOK_TYPES]
        if unknown:
            raise InvalidSettingError(
                f"--allow-hooks has {', '.join(unknown)}; use a comma-separated "
                f"list of {', '.join(HOOK_TYPES)}."
            )
        GuardPolicy.from_cidrs(self.allowed_networks)

    @property
    def guarded(self) -> bool:
        return self.guard or bool(self.allowed_networks)

    def policy(self) -> GuardPolicy | None:
        """Return the guard's policy, or None when the guard is off."""
        if not self.guarded:
            return None
        return GuardPolicy.from_cidrs(self.allowed_networks)

    def input_limits(self) -> InputLimits:
        return InputLimits(
            max_urls=self.max_urls,
            max_runs=self.max_runs,
            max_input_bytes=self.max_body_bytes,
        )
