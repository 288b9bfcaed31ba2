"""Request bodies of the HTTP API, checked by pydantic before any handler runs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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

    max_running_jobs: int | None = Field(default=None, ge=1)
    max_runs_per_day: int | None = Field(default=None, ge=1)

    def quota(self) -> Quota:
        return Quota(self.max_running_jobs, self.max_runs_per_day)


class TokenRequest(BaseModel):
    """The body of ``POST /api/tokens``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    admin: bool = False
    quota: QuotaIn = QuotaIn()
