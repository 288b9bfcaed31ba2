"""A completed job's webhooks and its announcement on the completion topic.

A job submitted to the AWS engine names its hooks as URLs; each becomes a
webhook (``lhfleet.hooks.HookSpec``) that the shared ``Deliverer`` fires
through the hook ledger. Hook failures are recorded and never undo the
completion: the results are already in S3.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lhfleet.errors import InvalidSettingError
from lhfleet.hooks import EVENT, HookSpec

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

logger = logging.getLogger(__name__)


def webhook_spec(url: str, where: str = "hook") -> HookSpec:
    """Return the webhook a hook URL stands for; InvalidSettingError if invalid."""
    return HookSpec.from_dict({"type": "webhook", "url": url}, where)


def webhook_specs(job_id: str, urls: Sequence[str]) -> list[dict[str, Any]]:
    """Return the ledger specs of a stored job's hook URLs, skipping invalid ones.

    Submit checks each URL, so an invalid one is logged and left out
    rather than failing every completion of the job.
    """
    specs = []
    for index, url in enumerate(urls):
        try:
            specs.append(webhook_spec(url, f"hook {index}").to_dict())
        except InvalidSettingError as error:
            logger.error("job %s: hook %d skipped: %s", job_id, index, error)
    return specs


ANNOUNCED_FIELDS = ("event", "job", "results", "urls_without_valid_run")
"""The fields of the hooks' payload in the completion topic's message. The
per-URL summaries are left out, because an SNS message is at most 256 KB."""


def announce(
    client: SNSClient, topic_arn: str, job_id: str, payload: dict[str, Any]
) -> bool:
    """Publish the completion on an SNS topic; False (and a log line) on failure."""
    message = {key: payload[key] for key in ANNOUNCED_FIELDS}
    try:
        client.publish(
            TopicArn=topic_arn,
            Subject=f"lhfleet job {job_id} completed",
            Message=json.dumps(message),
            MessageAttributes={
                "event": {"DataType": "String", "StringValue": EVENT},
            },
        )
    except ClientError as error:
        logger.error("job %s: publishing to %s failed: %s", job_id, topic_arn, error)
        return False
    logger.info("job %s: completion published to %s", job_id, topic_arn)
    return True
