"""Limits on what one job may ask for, checked before anything is queued."""

from __future__ import annotations

from dataclasses import dataclass

from lhfleet.errors import InputTooLargeError

MIB = 1024 * 1024


@dataclass(frozen=True)
class InputLimits:
    """The largest input lhfleet accepts; a server may set lower ones."""

    max_urls: int = 10_000
    """URLs per job, after duplicates are merged."""

    max_runs: int = 100
    """Runs per URL, the same bound ``lhfleet run --runs`` has."""

    max_line_length: int = 8192
    """Characters in one URL; Chromium accepts longer, many servers do not."""

    max_input_bytes: int = 16 * MIB
    """Bytes of one URL list file, stdin or request body."""

    max_sitemap_bytes: int = 50 * MIB
    """Bytes of one sitemap once uncompressed, the sitemaps.org limit."""

    def check_urls(self, count: int) -> None:
        """Raise InputTooLargeError when a job has more URLs than allowed."""
        if count > self.max_urls:
            raise InputTooLargeError(
                f"The job has {count} URLs; the limit is {self.max_urls} per job. "
                "Split the list into several jobs."
            )

    def check_runs(self, runs: int) -> None:
        """Raise InputTooLargeError when more runs per URL are asked than allowed."""
        if runs > self.max_runs:
            raise InputTooLargeError(
                f"The job asks for {runs} runs per URL; the limit is "
                f"{self.max_runs}. Ask for fewer runs."
            )

    def check_request_size(self, size: int) -> None:
        """Raise InputTooLargeError for a request body larger than allowed."""
        if size > self.max_input_bytes:
            raise InputTooLargeError(
                f"The request is {size} bytes; the limit is {self.max_input_bytes}. "
                "Send fewer URLs per job."
            )
