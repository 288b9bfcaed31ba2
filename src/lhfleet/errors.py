"""The exceptions lhfleet raises, one tree for the whole package.

    LhfleetError                 base; ``exit_code`` is what the CLI exits with
    ├── UsageError               bad input from the user (exit 2)
    │   ├── InvalidURLError      a URL that cannot be audited
    │   │   └── TargetRejected   the network guard rejected a URL's address
    │   ├── InvalidSettingError  an option or setting out of range
    │   │   └── InvalidFieldError  a field of an API request, named in ``field``
    │   ├── InputTooLargeError   an input over a limit (URLs, runs, bytes)
    │   ├── InputFetchError      a sitemap, robots.txt or crawled page failed to load
    │   ├── JobStateConflict     a change the job's state does not allow (HTTP 409)
    │   └── ConfigError          a config file unreadable, or with a bad or unknown key
    ├── NotFoundError            a job or run id that the store does not have
    ├── JobNotFinished           a job's results were asked for before it completed
    ├── EnvironmentProblem       Node, Lighthouse or Chromium missing or broken
    │   └── ChromeLaunchError    Chromium would not start, so the job stopped
    ├── StoreError               the job store failed or has a newer schema
    │   ├── AwsServiceError      an AWS service call failed (DynamoDB, S3, SQS, SNS)
    │   └── BrokerError          the Celery broker refused or lost a message
    ├── JobInterrupted           the job was stopped before every run settled
    ├── AssertionsFailed         an error-level assertion (budget) failed (exit 1)
    ├── RegressionFound          compare found a significant regression (exit 1)
    ├── JobDeadlineError         --max-duration passed; unfinished runs failed
    ├── AccessError              the server rejected a request's token (exit 2)
    │   ├── AuthenticationError  no token, an unknown one or a revoked one (401)
    │   └── PermissionDenied     a token without the admin right (403)
    ├── QuotaExceeded            a token is over one of its quotas (429)
    └── RemoteError              the lhfleet server was unreachable or failed (exit 4)

Each message says what failed, on which value, and what to do next.
"""

from __future__ import annotations


class LhfleetError(Exception):
    """Base of every error lhfleet raises on purpose."""

    exit_code = 1


class UsageError(LhfleetError):
    """Input from the user that lhfleet rejects before queuing anything."""

    exit_code = 2


class InvalidURLError(UsageError):
    """A URL that cannot be audited."""


class InvalidSettingError(UsageError):
    """An option or setting with a value out of range."""


class InvalidFieldError(InvalidSettingError):
    """A field of an HTTP API request that lhfleet rejects; the API answers 422."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        """The field's path in the request body, such as ``urls`` or ``hooks[0]``."""


class TargetRejected(InvalidURLError):
    """A URL whose host resolves to an address that the network guard blocks."""

    def __init__(
        self, message: str, url: str, rule: str, address: str, reason: str = ""
    ) -> None:
        super().__init__(message)
        self.url = url
        self.rule = rule
        self.address = address
        self.reason = reason or message
        """The message without the URL, for lists that name the URL already."""


class InputTooLargeError(UsageError):
    """An input over one of the limits: URLs per job, runs per URL or bytes."""


class InputFetchError(UsageError):
    """A sitemap, robots.txt or page that the input needs could not be loaded."""


class JobStateConflict(UsageError):
    """A change the job's state does not allow, such as cancelling a completed job."""


class NotFoundError(LhfleetError):
    """A job or run id that the store does not know."""

    exit_code = 2


class JobNotFinished(LhfleetError):
    """A job's results document was requested before the job completed."""

    exit_code = 2


class EnvironmentProblem(LhfleetError):
    """Node, Lighthouse or Chromium is missing or does not work."""

    exit_code = 3


class ChromeLaunchError(EnvironmentProblem):
    """Chromium would not start; the job stopped instead of failing every run."""


class StoreError(LhfleetError):
    """The job store could not be opened or written."""

    exit_code = 4


class AwsServiceError(StoreError):
    """An AWS service call of the AWS engine failed after boto3's own retries."""


class BrokerError(StoreError):
    """The cluster engine could not publish to its Celery broker (Redis, RabbitMQ)."""


class JobInterrupted(LhfleetError):
    """The job stopped before every run settled; ``lhfleet resume`` goes on."""

    exit_code = 130


class JobDeadlineError(LhfleetError):
    """The job's time limit passed; its unfinished runs were settled as failed."""

    exit_code = 5


class ConfigError(UsageError):
    """A config file (lhfleet.toml, lighthouserc.json) that cannot be used."""


class AssertionsFailed(LhfleetError):
    """At least one error-level assertion failed; the failures were printed."""

    exit_code = 1


class RegressionFound(LhfleetError):
    """``lhfleet compare`` found a significant regression; it was printed."""

    exit_code = 1


class AccessError(LhfleetError):
    """A request to the lhfleet server whose token does not allow it."""

    exit_code = 2


class AuthenticationError(AccessError):
    """A request without a token, or with an unknown or revoked one."""


class PermissionDenied(AccessError):
    """A request that needs an admin token, made with another token."""


class QuotaExceeded(LhfleetError):
    """A token is over a quota: jobs running at once, or runs per day."""

    exit_code = 2

    def __init__(
        self, message: str, quota: str, limit: int, resets_at: float | None
    ) -> None:
        super().__init__(message)
        self.quota = quota
        self.limit = limit
        self.resets_at = resets_at
        """When the quota frees up (Unix time), or None when a job must end first."""


class RemoteError(LhfleetError):
    """The lhfleet server could not be reached, or answered with an error."""

    exit_code = 4
