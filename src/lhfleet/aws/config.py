"""The locations of the AWS engine's resources, read from environment variables.

The Lambda functions get these variables from the template; ``lhfleet aws``
reads the same ones from the user's shell. boto3 itself reads the region,
the credentials and ``AWS_ENDPOINT_URL`` (an emulator's address).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import boto3

from lhfleet.errors import InvalidSettingError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

DEFAULT_TTL_DAYS = 30
ENV_PREFIX = "LHFLEET_AWS_"


@dataclass(frozen=True)
class AwsConfig:
    """Names and addresses of the engine's AWS resources, and its retention."""

    jobs_table: str = "lhfleet-jobs"
    runs_table: str = "lhfleet-runs"
    hooks_table: str = "lhfleet-hooks"
    """The table of the jobs' hook deliveries and every attempt at them."""

    bucket: str = ""
    queue_url: str = ""
    fanout_topic_arn: str = ""
    """When set, run messages go to this SNS topic, which feeds the queue."""

    completion_topic_arn: str = ""
    """When set, every completed job is announced on this SNS topic."""

    ttl_days: float = DEFAULT_TTL_DAYS
    """Days until job and run items expire (DynamoDB TTL); 0 keeps them."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AwsConfig:
        env = os.environ if environ is None else environ

        def read(name: str, default: str = "") -> str:
            return env.get(ENV_PREFIX + name, default).strip()

        ttl_text = read("TTL_DAYS", str(DEFAULT_TTL_DAYS))
        try:
            ttl_days = float(ttl_text)
        except ValueError:
            ttl_days = -1.0
        if ttl_days < 0:
            raise InvalidSettingError(
                f"{ENV_PREFIX}TTL_DAYS is {ttl_text!r}; set it to a number of "
                "days, 0 or more (0 keeps items forever)."
            )
        return cls(
            jobs_table=read("JOBS_TABLE", cls.jobs_table),
            runs_table=read("RUNS_TABLE", cls.runs_table),
            hooks_table=read("HOOKS_TABLE", cls.hooks_table),
            bucket=read("BUCKET"),
            queue_url=read("QUEUE_URL"),
            fanout_topic_arn=read("FANOUT_TOPIC_ARN"),
            completion_topic_arn=read("COMPLETION_TOPIC_ARN"),
            ttl_days=ttl_days,
        )

    def require(self, *names: str) -> None:
        """Raise InvalidSettingError naming each required setting that is empty."""
        missing = [name for name in names if not getattr(self, name)]
        if missing:
            variables = ", ".join(ENV_PREFIX + name.upper() for name in missing)
            raise InvalidSettingError(
                f"{variables} not set. Set them to the values the stack's "
                "outputs list (see docs/aws.md), then run the command again."
            )

    def expires_at(self, now: float) -> int | None:
        """Return the TTL attribute for an item written at ``now``, or None."""
        if self.ttl_days <= 0:
            return None
        return int(now + self.ttl_days * 86400)


class AwsClients:
    """The boto3 clients of one process, made on first use and then shared.

    boto3 clients are thread-safe, so the worker threads of a benchmark and
    the handlers of one Lambda container share them.
    """

    def __init__(self, region: str | None = None) -> None:
        self.region = region

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self._session.client("dynamodb", **self._options())

    @cached_property
    def s3(self) -> S3Client:
        return self._session.client("s3", **self._options())

    @cached_property
    def sqs(self) -> SQSClient:
        return self._session.client("sqs", **self._options())

    @cached_property
    def sns(self) -> SNSClient:
        return self._session.client("sns", **self._options())

    @cached_property
    def _session(self) -> boto3.session.Session:
        return boto3.session.Session()

    def _options(self) -> dict[str, Any]:
        from botocore.config import Config  # noqa: PLC0415

        retries = Config(
            retries={"max_attempts": 8, "mode": "adaptive"},
            max_pool_connections=64,
        )
        return {"region_name": self.region, "config": retries}
