"""A completed job's hooks: an HTTP POST to each of the job's URLs, and SNS.

Hook failures are logged and never undo the completion: the results are
already in S3, and a hook that is down must not make the job incomplete.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lhfleet.results import urls_without_valid_run

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

logger = logging.getLogger(__name__)

EVENT = "lhfleet.job.completed"
TIMEOUT_SECONDS = 10.0
ATTEMPTS = 3


def hook_payload(document: dict[str, Any], results_url: str) -> dict[str, Any]:
    """Return the JSON every hook receives: the job, its counts and its results."""
    return {
        "event": EVENT,
        "job": document["job"],
        "results": results_url,
        "urls_without_valid_run": urls_without_valid_run(document),
    }


def post_hooks(job_id: str, hooks: Sequence[str], payload: dict[str, Any]) -> int:
    """POST ``payload`` to each hook URL; return how many accepted it (2xx)."""
    body = json.dumps(payload).encode("utf-8")
    delivered = 0
    for url in hooks:
        delivered += _post(job_id, url, body)
    return delivered


def _post(job_id: str, url: str, body: bytes) -> bool:
    request = urllib.request.Request(  # noqa: S310 - the URL was checked at submit
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "lhfleet"},
    )
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
                logger.info(
                    "job %s: hook %s returned HTTP %d", job_id, url, response.status
                )
                return True
        except (urllib.error.URLError, OSError) as error:
            logger.warning(
                "job %s: hook %s failed (attempt %d of %d): %s",
                job_id,
                url,
                attempt,
                ATTEMPTS,
                error,
            )
            if attempt < ATTEMPTS:
                time.sleep(attempt)
    return False


def announce(
    client: SNSClient, topic_arn: str, job_id: str, payload: dict[str, Any]
) -> bool:
    """Publish the completion on an SNS topic; False (and a log line) on failure."""
    try:
        client.publish(
            TopicArn=topic_arn,
            Subject=f"lhfleet job {job_id} completed",
            Message=json.dumps(payload),
            MessageAttributes={
                "event": {"DataType": "String", "StringValue": EVENT},
            },
        )
    except ClientError as error:
        logger.error("job %s: publishing to %s failed: %s", job_id, topic_arn, error)
        return False
    logger.info("job %s: completion published to %s", job_id, topic_arn)
    return True
