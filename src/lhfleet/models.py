"""Jobs, runs and their settings: the domain, free of any store or engine."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class RunState(enum.StrEnum):
    """The state of a run. ``succeeded`` and ``failed`` are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def settled(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED)


class JobState(enum.StrEnum):
    """The state of a job: ``running`` until its last run settles."""

    RUNNING = "running"
    COMPLETED = "completed"


CATEGORIES = ("performance", "accessibility", "best-practices", "seo")
"""Category ids that Lighthouse 13 accepts in ``onlyCategories``."""

EXTRA_CATEGORIES = ("agentic-browsing",)
"""Category ids that Lighthouse 13.2 and later add; accepted, never default."""

PRESETS = ("mobile", "desktop")


@dataclass(frozen=True)
class JobSettings:
    """The audit settings of each run of a job. Secrets are kept in ``JobSecrets``."""

    runs: int = 3
    preset: str = "mobile"
    categories: tuple[str, ...] = CATEGORIES
    timeout: float = 120.0
    chrome_flags: tuple[str, ...] = ()
    retries: int = 2
    ignore_certificate_errors: bool = False
    """Accept invalid HTTPS certificates (self-signed test servers)."""

    strip_screenshots: bool = False
    """Leave the embedded screenshots out of the stored JSON reports."""

    representative: str = "lighthouse"
    """How each URL's representative run is chosen: ``lighthouse`` (its FCP and
    TTI rule) or the key of a score or metric whose median the run is closest to."""

    max_runs: int | None = None
    """With ``runs = auto``: the most runs per URL; ``runs`` is then the fewest."""

    spread_target: str = "performance:cv=0.05"
    """The spread a URL must stay within to be trusted, and to stop adding runs."""

    host_benchmark_index: float | None = None
    """The host's idle ``benchmarkIndex`` when the job was submitted, if calibrated."""

    contention_ratio: float = 0.8
    """A run whose ``benchmarkIndex`` is below this share of the idle figure is
    marked as measured on a contended host."""

    guard: bool = False
    """Whether each run's browser goes through the network guard's proxy. The
    process that runs the audit starts the proxy, so its address is never
    stored."""

    allowed_networks: tuple[str, ...] = ()
    """With ``guard``: networks (CIDR) the guard lets through besides public
    addresses."""

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "preset": self.preset,
            "categories": list(self.categories),
            "timeout": self.timeout,
            "chrome_flags": list(self.chrome_flags),
            "retries": self.retries,
            "ignore_certificate_errors": self.ignore_certificate_errors,
            "strip_screenshots": self.strip_screenshots,
            "representative": self.representative,
            "max_runs": self.max_runs,
            "spread_target": self.spread_target,
            "host_benchmark_index": self.host_benchmark_index,
            "contention_ratio": self.contention_ratio,
            "guard": self.guard,
            "allowed_networks": list(self.allowed_networks),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSettings:
        chrome_flags = tuple(data["chrome_flags"])
        guard = bool(data.get("guard"))
        if _has_stored_proxy_flags(chrome_flags):
            chrome_flags = tuple(
                flag for flag in chrome_flags if not flag.startswith(_PROXY_FLAGS)
            )
            guard = True
        return cls(
            runs=int(data["runs"]),
            preset=str(data["preset"]),
            categories=tuple(data["categories"]),
            timeout=float(data["timeout"]),
            chrome_flags=chrome_flags,
            retries=int(data["retries"]),
            ignore_certificate_errors=bool(data.get("ignore_certificate_errors")),
            strip_screenshots=bool(data.get("strip_screenshots")),
            representative=str(data.get("representative") or "lighthouse"),
            max_runs=_optional_int(data.get("max_runs")),
            spread_target=str(data.get("spread_target") or "performance:cv=0.05"),
            host_benchmark_index=_optional_float(data.get("host_benchmark_index")),
            contention_ratio=float(data.get("contention_ratio") or 0.8),
            guard=guard,
            allowed_networks=tuple(data.get("allowed_networks") or ()),
        )

    @property
    def adaptive(self) -> bool:
        """True when runs are added per URL until its spread target is met."""
        return self.max_runs is not None


_PROXY_FLAGS = (
    "--proxy-server=http://127.0.0.1:",
    "--proxy-bypass-list=<-loopback>",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
)


def _has_stored_proxy_flags(flags: tuple[str, ...]) -> bool:
    """Return True for the guard proxy's flags, which older guarded jobs stored.

    ``lhfleet run --guard`` stored the flags of its own proxy before jobs
    recorded ``guard``. That proxy is gone, so such a job is read as guarded
    without the flags. Its allowed networks were not stored, so the guard
    blocks every address that is not public for it.
    """
    return all(
        any(flag.startswith(prefix) for flag in flags) for prefix in _PROXY_FLAGS
    )


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class JobSecrets:
    """Values a run needs that never appear in results, reports or logs."""

    extra_headers: dict[str, str] = field(default_factory=dict)
    login_script: LoginScript | None = None
    """A script that signs in through the run's Chrome before the audit."""

    def __repr__(self) -> str:
        script = "" if self.login_script is None else ", login_script=<redacted>"
        return f"JobSecrets(extra_headers=<{len(self.extra_headers)} redacted>{script})"

    def to_dict(self) -> dict[str, Any]:
        stored: dict[str, Any] = {"extra_headers": self.extra_headers}
        if self.login_script is not None:
            stored["login_script"] = {
                "name": self.login_script.name,
                "source": self.login_script.source,
            }
        return stored

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> JobSecrets:
        data = data or {}
        script = data.get("login_script")
        login = None
        if isinstance(script, dict):
            login = LoginScript(str(script["name"]), str(script["source"]))
        return cls(dict(data.get("extra_headers") or {}), login)


@dataclass(frozen=True)
class LoginScript:
    """A Puppeteer script, kept with the job's secrets because it may hold
    credentials. ``name`` is the file name it was read from; its extension
    tells an ES module (.mjs) from a CommonJS one (.js, .cjs)."""

    name: str
    source: str


@dataclass(frozen=True)
class Target:
    """A URL to audit, with an optional label and metadata that travel with its runs."""

    url: str
    label: str | None = None
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class Job:
    id: str
    state: JobState
    settings: JobSettings
    created_at: datetime
    finished_at: datetime | None
    total: int
    succeeded: int
    failed: int

    @property
    def pending(self) -> int:
        return self.total - self.succeeded - self.failed


@dataclass(frozen=True)
class Run:
    """One Lighthouse audit of one URL, as the job store keeps it."""

    id: str
    job_id: str
    url_index: int
    url: str
    index: int
    state: RunState
    attempts: int
    error_code: str | None = None
    error_message: str | None = None
    stderr_tail: str | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    metrics: dict[str, float | None] = field(default_factory=dict)
    benchmark_index: float | None = None
    lighthouse_version: str | None = None
    final_url: str | None = None
    warnings: list[dict[str, str]] = field(default_factory=list)
    conditions: dict[str, Any] = field(default_factory=dict)
    """Measurement conditions of the run: concurrency, host load, window wait."""
    report_json: str | None = None
    report_html: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    label: str | None = None
    meta: dict[str, Any] | None = None


def run_id(job_id: str, url_index: int, index: int) -> str:
    """Return the id of a job's run: stable, so that creating a job is idempotent."""
    return f"{job_id}-{url_index}-{index}"
