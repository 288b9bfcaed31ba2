"""The Lambda entry points: they parse the events Lambda sends and call the engine.

Each function's image runs one of these (the template sets which). The
engine and the auditor are built on the first event and reused while the
container lives. Logging goes to stdout, which Lambda sends to CloudWatch.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lhfleet.auditor import Auditor
from lhfleet.aws import completion, sweep, worker
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.submit import parse_request, submit_job
from lhfleet.errors import UsageError
from lhfleet.runtime import find_runtime

logger = logging.getLogger(__name__)

SCRATCH = Path("/tmp/lhfleet")
DEFAULT_TIME_LEFT = 900.0

_engine: AwsEngine | None = None
_worker: worker.RunWorker | None = None


def engine() -> AwsEngine:
    """Return this container's engine, built from the environment on first use."""
    global _engine  # noqa: PLW0603 - one engine per Lambda container
    if _engine is None:
        _configure_logging()
        _engine = AwsEngine.from_env()
    return _engine


def run_worker() -> worker.RunWorker:
    global _worker  # noqa: PLW0603 - one auditor per Lambda container
    if _worker is None:
        SCRATCH.mkdir(parents=True, exist_ok=True)
        _worker = worker.RunWorker(engine(), Auditor(find_runtime(), SCRATCH))
    return _worker


def submit_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Submit a job (``urls`` or ``targets``, ``settings``, ``hooks``), or resume one.

    An event with ``resume_job_id`` only resumes that job's fan-out.
    """
    aws = engine()
    owner = owner_of(context, "submit")
    left = time_left(context)
    if "resume_job_id" in event:
        progress = aws.fanout.publish(str(event["resume_job_id"]), owner, left)
        return {
            "job_id": progress.job_id,
            "published": progress.published,
            "total": progress.total,
            "fanout_done": progress.done,
        }
    try:
        targets, settings, secrets, hooks = parse_request(event)
        submission = submit_job(aws, targets, settings, secrets, hooks, owner, left)
    except UsageError as error:
        logger.warning("submit rejected: %s", error)
        return {"ok": False, "error": str(error)}
    return {
        "ok": True,
        "job_id": submission.job.id,
        "total": submission.job.total,
        "published": submission.progress.published,
        "fanout_done": submission.progress.done,
    }


def worker_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Audit the runs of an SQS batch; report the messages to deliver again."""
    return handle_worker_event(run_worker(), event, context)


def handle_worker_event(
    runs: worker.RunWorker, event: Mapping[str, Any], context: Any
) -> dict[str, Any]:
    """Handle an SQS event with a given worker (the tests pass their own auditor)."""
    failures = []
    owner = owner_of(context, "worker")
    for record in event.get("Records", []):
        message_id = record["messageId"]
        try:
            delay = runs.handle(record["body"], owner, time_left(context)())
        except Exception:
            logger.exception("message %s: worker failed", message_id)
            failures.append({"itemIdentifier": message_id})
            continue
        if delay is not None:
            _delay_message(runs.engine, record, delay)
            failures.append({"itemIdentifier": message_id})
    return {"batchItemFailures": failures}


def dead_letter_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Record the runs of dead-lettered messages as failed."""
    return handle_dead_letter_event(engine(), event)


def handle_dead_letter_event(
    aws: AwsEngine, event: Mapping[str, Any]
) -> dict[str, Any]:
    failures = []
    for record in event.get("Records", []):
        try:
            worker.record_dead_letter(aws, record["body"])
        except Exception:
            logger.exception("dead letter %s: recording failed", record["messageId"])
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def completion_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Complete the jobs whose stream records show every run settled."""
    return handle_stream_event(engine(), event, context)


def handle_stream_event(
    aws: AwsEngine, event: Mapping[str, Any], context: Any = None
) -> dict[str, Any]:
    """Handle a DynamoDB stream batch; on a failure report it and stop there.

    Lambda retries a stream batch from the first failed record, so the
    records after it must not be handled out of order.
    """
    owner = owner_of(context, "completion") if context is not None else None
    for record in event.get("Records", []):
        try:
            completion.handle_stream_record(aws, record, owner)
        except Exception:
            sequence = record.get("dynamodb", {}).get("SequenceNumber")
            logger.exception("stream record %s: completion failed", sequence)
            return {"batchItemFailures": [{"itemIdentifier": sequence}]}
    return {"batchItemFailures": []}


def sweep_handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Resume stalled fan-outs and completions (run on a schedule)."""
    report = sweep.sweep(engine(), owner_of(context, "sweep"), time_left(context))
    return {
        "resumed": report.resumed,
        "republished": report.republished,
        "completed": report.completed,
    }


def owner_of(context: Any, role: str) -> str:
    """Return a lease owner id for this invocation."""
    request_id = getattr(context, "aws_request_id", None) or "local"
    return f"lambda/{role}/{request_id}"


def time_left(context: Any) -> Callable[[], float]:
    """Return a function giving the invocation's remaining seconds."""
    getter = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(getter):
        return lambda: DEFAULT_TIME_LEFT
    return lambda: float(getter()) / 1000.0


def _delay_message(aws: AwsEngine, record: Mapping[str, Any], delay: float) -> None:
    aws.clients.sqs.change_message_visibility(
        QueueUrl=queue_url(aws, record),
        ReceiptHandle=record["receiptHandle"],
        VisibilityTimeout=worker.visible_after(delay),
    )


def queue_url(aws: AwsEngine, record: Mapping[str, Any]) -> str:
    """Return the URL of the queue a record came from (its ARN names it)."""
    arn = str(record.get("eventSourceARN", ""))
    parts = arn.split(":")
    if len(parts) == 6 and parts[2] == "sqs":
        response = aws.clients.sqs.get_queue_url(
            QueueName=parts[5], QueueOwnerAWSAccountId=parts[4]
        )
        return response["QueueUrl"]
    return aws.config.queue_url


def _configure_logging() -> None:
    root = logging.getLogger("lhfleet")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
