"""The sweeper: a scheduled pass that makes sure no job waits forever.

It reads the sparse sweep index, which lists the jobs with unfinished
business. It resumes a fan-out whose lease lapsed, and sends the messages
of runs that a retry queued again if their publisher stopped. It completes
a job whose runs have all settled but whose stream record was lost. It
finishes a completion that crashed after winning its conditional write,
once that write is older than any Lambda invocation can last. That also
delivers the hooks whose lease the crashed completion held.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from lhfleet.aws import schema
from lhfleet.aws.completion import COMPLETED, complete, ready_to_complete
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.items import attrs, plain

logger = logging.getLogger(__name__)

STALE_COMPLETION = 960.0
"""Seconds after which an unfinished completion is taken over: Lambda's
longest invocation (900 s) plus a minute."""


@dataclass
class SweepReport:
    resumed: list[str] = field(default_factory=list)
    republished: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)


def sweep(
    engine: AwsEngine,
    owner: str,
    time_left: Callable[[], float] = lambda: math.inf,
) -> SweepReport:
    """Resume stalled fan-outs and completions; return what was done."""
    report = SweepReport()
    for job_id in open_jobs(engine):
        values = engine.store.job_values(job_id)
        if _republish_stalled(values, engine.clock()):
            sent = engine.fanout.republish(job_id, owner)
            report.republished.append(job_id)
            logger.info("job %s: sweep sent %d messages of queued runs", job_id, sent)
        if _fanout_stalled(values, engine.clock()):
            progress = engine.fanout.publish(job_id, owner, time_left)
            report.resumed.append(job_id)
            logger.info(
                "job %s: sweep resumed fan-out, now %d of %d",
                job_id,
                progress.published,
                progress.total,
            )
        elif ready_to_complete(values):
            if complete(engine, job_id, f"sweep:{job_id}", owner):
                report.completed.append(job_id)
        elif _completion_stalled(values, engine.clock()) and complete(
            engine, job_id, str(values["completion_token"]), owner
        ):
            report.completed.append(job_id)
        if time_left() < 10:
            logger.warning("sweep stopped early: the invocation is running out of time")
            break
    return report


def open_jobs(engine: AwsEngine) -> Iterator[str]:
    """Yield the ids of jobs on the sweep index, oldest first."""
    client = engine.store.client
    arguments: dict[str, Any] = {
        "TableName": engine.config.jobs_table,
        "IndexName": schema.SWEEP_INDEX,
        "KeyConditionExpression": "#sweep = :open",
        "ExpressionAttributeNames": {"#sweep": "sweep"},
        "ExpressionAttributeValues": attrs({":open": schema.SWEEP_OPEN}),
    }
    while True:
        response = client.query(**arguments)
        for item in response.get("Items", []):
            yield str(plain(item)["id"])
        if "LastEvaluatedKey" not in response:
            return
        arguments["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def _fanout_stalled(values: dict[str, Any], now: float) -> bool:
    if values["fanout_published"] >= values["total"]:
        return False
    return bool(values.get("fanout_lease_until", 0) < now)


def _republish_stalled(values: dict[str, Any], now: float) -> bool:
    if "republish" not in values:
        return False
    return bool(values.get("republish_until", 0) < now)


def _completion_stalled(values: dict[str, Any], now: float) -> bool:
    if values.get("state") != COMPLETED or "hooks_fired_at" in values:
        return False
    return bool(now - values.get("finished_at", now) > STALE_COMPLETION)
