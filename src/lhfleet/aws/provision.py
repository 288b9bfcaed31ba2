"""Create the engine's resources directly with boto3, for emulators and trials.

A deployment uses the template in ``infra/``. This module makes the same
tables, queues, topics and bucket on an emulator such as moto's server,
which the tests and the benchmark use. The tests check that both agree.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from lhfleet.aws import schema
from lhfleet.aws.config import AwsClients, AwsConfig

logger = logging.getLogger(__name__)

MAX_RECEIVE_COUNT = 5
REPORT_RETENTION_DAYS = 30


def provision(
    clients: AwsClients,
    prefix: str,
    via_sns: bool = False,
    visibility_timeout: int = 5400,
    max_receive_count: int = MAX_RECEIVE_COUNT,
) -> AwsConfig:
    """Create every resource under ``prefix``; return the config that names them."""
    jobs_table, runs_table = f"{prefix}-jobs", f"{prefix}-runs"
    hooks_table = f"{prefix}-hooks"
    _create_tables(clients, jobs_table, runs_table, hooks_table)
    bucket = f"{prefix}-reports"
    _create_bucket(clients, bucket)

    queue_url = _create_queues(clients, prefix, visibility_timeout, max_receive_count)
    fanout_topic = ""
    if via_sns:
        fanout_topic = clients.sns.create_topic(Name=f"{prefix}-fanout")["TopicArn"]
        clients.sns.subscribe(
            TopicArn=fanout_topic,
            Protocol="sqs",
            Endpoint=queue_arn(clients, queue_url),
            Attributes={"RawMessageDelivery": "true"},
        )
    completion_topic = clients.sns.create_topic(Name=f"{prefix}-completed")["TopicArn"]
    logger.info("provisioned %s: tables, bucket, queues and topics", prefix)
    return AwsConfig(
        jobs_table=jobs_table,
        runs_table=runs_table,
        hooks_table=hooks_table,
        bucket=bucket,
        queue_url=queue_url,
        fanout_topic_arn=fanout_topic,
        completion_topic_arn=completion_topic,
    )


def dead_letter_queue_url(clients: AwsClients, config: AwsConfig) -> str:
    """Return the URL of the run queue's dead-letter queue, from its redrive policy."""
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=config.queue_url, AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
    return clients.sqs.get_queue_url(QueueName=arn.split(":")[-1])["QueueUrl"]


def queue_arn(clients: AwsClients, queue_url: str) -> str:
    attributes = clients.sqs.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["QueueArn"]
    )["Attributes"]
    return attributes["QueueArn"]


def _create_queues(
    clients: AwsClients, prefix: str, visibility_timeout: int, max_receive_count: int
) -> str:
    dlq_url = clients.sqs.create_queue(QueueName=f"{prefix}-runs-dlq")["QueueUrl"]
    redrive = {
        "deadLetterTargetArn": queue_arn(clients, dlq_url),
        "maxReceiveCount": str(max_receive_count),
    }
    return clients.sqs.create_queue(
        QueueName=f"{prefix}-runs",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]


def _create_tables(
    clients: AwsClients, jobs_table: str, runs_table: str, hooks_table: str
) -> None:
    jobs: Any = {
        "TableName": jobs_table,
        "KeySchema": schema.JOBS_KEY,
        "AttributeDefinitions": schema.JOBS_ATTRIBUTES,
        "GlobalSecondaryIndexes": schema.JOBS_INDEXES,
        "StreamSpecification": schema.JOBS_STREAM,
        "BillingMode": "PAY_PER_REQUEST",
    }
    runs: Any = {
        "TableName": runs_table,
        "KeySchema": schema.RUNS_KEY,
        "AttributeDefinitions": schema.RUNS_ATTRIBUTES,
        "BillingMode": "PAY_PER_REQUEST",
    }
    hooks: Any = {
        "TableName": hooks_table,
        "KeySchema": schema.HOOKS_KEY,
        "AttributeDefinitions": schema.HOOKS_ATTRIBUTES,
        "BillingMode": "PAY_PER_REQUEST",
    }
    for definition in (jobs, runs, hooks):
        clients.dynamodb.create_table(**definition)
        clients.dynamodb.update_time_to_live(
            TableName=definition["TableName"],
            TimeToLiveSpecification={
                "Enabled": True,
                "AttributeName": schema.TTL_ATTRIBUTE,
            },
        )


def _create_bucket(clients: AwsClients, bucket: str) -> None:
    clients.s3.create_bucket(Bucket=bucket)
    clients.s3.put_bucket_lifecycle_configuration(
        Bucket=bucket,
        LifecycleConfiguration={
            "Rules": [
                {
                    "ID": "expire-reports",
                    "Status": "Enabled",
                    "Filter": {"Prefix": "reports/"},
                    "Expiration": {"Days": REPORT_RETENTION_DAYS},
                }
            ]
        },
    )
