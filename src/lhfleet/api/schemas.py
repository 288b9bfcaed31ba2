"""Request bodies and error responses of the HTTP API, as pydantic models.

Request bodies are checked before any handler runs. ``ErrorOut`` is the body
of every error response, and ``error_responses`` documents it in the OpenAPI
schema for the statuses a route may return.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from lhfleet.api.tokens import MAX_QUOTA
from lhfleet.models import CATEGORIES, EXTRA_CATEGORIES, JobSecrets, JobSettings
from lhfleet.ports import Quota


class TargetIn(BaseModel):
    """A URL with an optional label and metadata, as in a JSON URL list."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1)
    label: str | None = None
    meta: dict[str, Any] | None = None


class SettingsIn(BaseModel):
    """The audit settings of each run, the same as ``lhfleet run``'s options."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["mobile", "desktop"] = "mobile"
    categories: list[str] = Field(default_factory=lambda: list(CATEGORIES))
    timeout: float = Field(
        default=120.0, ge=10.0, le=3600.0, description="Seconds one run may take."
    )
    retries: int = Field(default=2, ge=0, le=10)
    chrome_flags: list[str] = Field(default_factory=list)
    ignore_certificate_errors: bool = False
    strip_screenshots: bool = False
    extra_headers: dict[str, str] = Field(
        default_factory=dict,
        description="Headers sent with every request; never stored in results.",
    )

    @field_validator("categories")
    @classmethod
    def _known_categories(cls, value: list[str]) -> list[str]:
        known = CATEGORIES + EXTRA_CATEGORIES
        unknown = [category for category in value if category not in known]
        if unknown or not value:
            raise ValueError(
                f"unknown or no categories ({', '.join(unknown)}); "
                f"use some of {', '.join(known)}"
            )
        return value

    def job_settings(self, runs: int) -> JobSettings:
        return JobSettings(
            runs=runs,
            preset=self.preset,
            categories=tuple(self.categories),
            timeout=self.timeout,
            chrome_flags=tuple(self.chrome_flags),
            retries=self.retries,
            ignore_certificate_errors=self.ignore_certificate_errors,
            strip_screenshots=self.strip_screenshots,
        )

    def secrets(self) -> JobSecrets:
        return JobSecrets(extra_headers=dict(self.extra_headers))


class JobRequest(BaseModel):
    """The body of ``POST /api/jobs``."""

    model_config = ConfigDict(extra="forbid")

    urls: list[str | TargetIn] = Field(min_length=1)
    runs: int = Field(default=3, ge=1, description="Runs per URL.")
    settings: SettingsIn = SettingsIn()
    skip_invalid: bool = Field(
        default=False,
        description="Leave invalid URLs out instead of rejecting the job.",
    )
    hooks: list[dict[str, Any]] = Field(
        default_factory=list,
        description='Completion hooks, such as {"type": "webhook", "url": ..., '
        '"secret": ...}.',
    )


class QuotaIn(BaseModel):
    """A token's quotas; null is no limit."""

    model_config = ConfigDict(extra="forbid")

    max_running_jobs: int | None = Field(default=None, ge=1, le=MAX_QUOTA)
    max_runs_per_day: int | None = Field(default=None, ge=1, le=MAX_QUOTA)

    def quota(self) -> Quota:
        return Quota(self.max_running_jobs, self.max_runs_per_day)


class TokenRequest(BaseModel):
    """The body of ``POST /api/tokens``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    admin: bool = False
    quota: QuotaIn = QuotaIn()


class ProblemOut(BaseModel):
    """One schema error of a request: the field at fault and what is wrong."""

    field: str
    message: str


class ErrorOut(BaseModel):
    """The body of every error response."""

    error: str = Field(description="What failed, on which value, and what to do.")
    field: str | None = Field(
        default=None,
        description="The request field at fault, such as settings.timeout (422).",
    )
    problems: list[ProblemOut] | None = Field(
        default=None, description="Every schema error of the request (422)."
    )
    limit: int | None = Field(
        default=None,
        description="The limit that was exceeded: bytes of a body (413), or the "
        "quota's limit (429).",
    )
    quota: str | None = Field(
        default=None, description="The quota that was exceeded (429)."
    )
    resets_at: str | None = Field(
        default=None,
        description="When the quota frees up, in ISO 8601; null when a running "
        "job must end first (429).",
    )


ERROR_DESCRIPTIONS = {
    400: "The request body is not UTF-8.",
    401: "No token, an unknown one or a revoked one.",
    403: "The route or a hook type needs an admin token.",
    404: "No such job, run or token, or a job of another token.",
    409: "The job's state does not allow the change.",
    413: "The request body is larger than the server's limit.",
    422: "A field is invalid; `field` names it.",
    429: "The token is over a quota.",
    503: "The job store or the browser failed.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Return the OpenAPI ``responses`` of a route for its error statuses.

    401, 422 and 503 are always included, because every route under /api
    needs a token, checks its parameters and reads the store.
    """
    codes = sorted({401, 422, 503, *statuses})
    return {
        code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]}
        for code in codes
    }
