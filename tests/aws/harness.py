"""What Lambda does around our handlers, done here against moto's server.

``QueuePoller`` plays the SQS event source mapping (receive a batch, invoke,
delete what did not fail) and ``StreamPoller`` the DynamoDB stream mapping.
``LambdaContext`` and ``CannedAuditor`` are stand-ins: the first for the
context object Lambda passes, the second for Lighthouse in the tests that
are about delivery and counting rather than auditing.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3

from lhfleet.auditor import Auditor, AuditRequest, AuditResult
from lhfleet.aws.config import AwsClients
from lhfleet.aws.provision import queue_arn
from lhfleet.runtime import Runtime

Handler = Callable[[Mapping[str, Any], Any], Mapping[str, Any]]


@dataclass
class LambdaContext:
    """A stand-in for the context object Lambda passes to a handler."""

    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    remaining_seconds: float = 60.0

    def get_remaining_time_in_millis(self) -> int:
        return int(self.remaining_seconds * 1000)


def canned_lhr(url: str, fcp: float = 800.0) -> dict[str, Any]:
    return {
        "lighthouseVersion": "13.5.0",
        "requestedUrl": url,
        "finalDisplayedUrl": url,
        "categories": {"performance": {"score": 0.9}},
        "audits": {
            "first-contentful-paint": {"numericValue": fcp},
            "largest-contentful-paint": {"numericValue": fcp + 200},
            "total-blocking-time": {"numericValue": 10.0},
            "cumulative-layout-shift": {"numericValue": 0.01},
            "speed-index": {"numericValue": fcp + 100},
            "interactive": {"numericValue": fcp + 300},
        },
        "environment": {"benchmarkIndex": 1500},
        "configSettings": {},
    }


class CannedAuditor(Auditor):
    """A stand-in for Lighthouse: returns a canned result, or a scripted failure.

    ``failures`` maps a URL to the error code every audit of it returns.
    """

    def __init__(self, failures: Mapping[str, str] | None = None) -> None:
        super().__init__(
            Runtime(Path("node"), Path("lh"), Path("gen"), Path("chrome")), Path()
        )
        self.failures = dict(failures or {})
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def audit(
        self,
        request: AuditRequest,
        label: str,
        owner: str,
        cancel: threading.Event | None = None,
    ) -> AuditResult:
        with self._lock:
            self.calls.append(label)
        code = self.failures.get(request.url)
        if code is not None:
            return AuditResult(None, code, f"scripted {code}")
        return AuditResult(canned_lhr(request.url), duration=0.01)

    def render_html(self, lhr_json: bytes) -> str:
        return "<html><body>report</body></html>"


def sqs_record(message: Mapping[str, Any], arn: str) -> dict[str, Any]:
    """Return an SQS message in the shape of a record of Lambda's SQS event."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", "0"),
            "SenderId": attributes.get("SenderId", "AIDATEST"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", "0"
            ),
        },
        "messageAttributes": {},
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": "us-east-1",
    }


class QueuePoller:
    """Plays Lambda's SQS event source mapping for one queue and one handler."""

    def __init__(
        self, clients: AwsClients, queue_url: str, handler: Handler, batch: int = 1
    ) -> None:
        self.clients = clients
        self.queue_url = queue_url
        self.arn = queue_arn(clients, queue_url)
        self.handler = handler
        self.batch = batch
        self.invocations = 0
        self.crashes = 0

    def poll_once(self) -> int:
        """Deliver one batch; return how many messages it had."""
        response = self.clients.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch,
            AttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        event = {"Records": [sqs_record(message, self.arn) for message in messages]}
        self.invocations += 1
        try:
            result = self.handler(event, LambdaContext())
        except BaseException:  # noqa: BLE001 - a crashed invocation deletes nothing
            self.crashes += 1
            return len(messages)
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.clients.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return len(messages)

    def drain(self, until: Callable[[], bool], timeout: float = 30.0) -> None:
        """Deliver batches until ``until()`` holds; fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.queue_url} did not reach the condition")
            if self.poll_once() == 0:
                time.sleep(0.2)


class StreamPoller:
    """Plays Lambda's DynamoDB stream mapping for one table's stream."""

    def __init__(self, clients: AwsClients, table: str, handler: Handler) -> None:
        self.streams = boto3.client("dynamodbstreams")
        arn = clients.dynamodb.describe_table(TableName=table)["Table"][
            "LatestStreamArn"
        ]
        shards = self.streams.describe_stream(StreamArn=arn)["StreamDescription"][
            "Shards"
        ]
        self.iterators = [
            self.streams.get_shard_iterator(
                StreamArn=arn,
                ShardId=shard["ShardId"],
                ShardIteratorType="TRIM_HORIZON",
            )["ShardIterator"]
            for shard in shards
        ]
        self.handler = handler
        self.delivered: list[dict[str, Any]] = []

    def poll_once(self) -> int:
        """Deliver every new record in one batch per shard; return how many."""
        count = 0
        for number in range(len(self.iterators)):
            records = self._read_shard(number)
            if records:
                result = self.handler({"Records": records}, LambdaContext())
                assert not result["batchItemFailures"]
                self.delivered += records
                count += len(records)
        return count

    def read_records(self) -> list[dict[str, Any]]:
        """Return the new records as Lambda would pass them, without delivering them."""
        records = []
        for number in range(len(self.iterators)):
            records += self._read_shard(number)
        return records

    def _read_shard(self, number: int) -> list[dict[str, Any]]:
        response = self.streams.get_records(ShardIterator=self.iterators[number])
        self.iterators[number] = response["NextShardIterator"]
        return [lambda_stream_record(record) for record in response["Records"]]

    def redeliver(self) -> None:
        """Deliver every record seen so far again, as a retried batch would."""
        self.handler({"Records": list(self.delivered)}, LambdaContext())


def lambda_stream_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Return a GetRecords record in the shape Lambda passes (times as numbers)."""
    data = dict(record["dynamodb"])
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        data["ApproximateCreationDateTime"] = created.timestamp()
    return {**record, "dynamodb": data, "eventSourceARN": "arn:aws:dynamodb:stream"}
