"""Completion: once per job, aggregate the results, store them, fire the hooks.

The jobs table's stream handler calls ``complete`` when an image shows
every run settled. One conditional write moves the job from running to
completed and records the stream record's id as ``completion_token``:
only one writer wins it. A retry of the same record (Lambda retries a
failed batch) carries the same token, so it may finish a completion that
crashed part way, until ``hooks_fired_at`` is recorded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.expressions import Update
from lhfleet.aws.hooks import announce, hook_payload, post_hooks
from lhfleet.aws.items import plain
from lhfleet.models import JobState
from lhfleet.results import results_document

logger = logging.getLogger(__name__)

RUNNING, COMPLETED = JobState.RUNNING.value, JobState.COMPLETED.value
CLAIM = (
    "(#state = :running AND #settled >= #total) OR (#state = :completed "
    "AND #completion_token = :token AND attribute_not_exists(#hooks_fired_at))"
)


def ready_to_complete(image: Mapping[str, Any]) -> bool:
    """Tell whether a job item's values show a running job with every run settled."""
    return (
        image.get("state") == RUNNING
        and "settled" in image
        and "total" in image
        and image["settled"] >= image["total"]
    )


def handle_stream_record(engine: AwsEngine, record: Mapping[str, Any]) -> bool:
    """Complete the job of a jobs-table stream record if it is ready; True if done."""
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return False
    image = plain(record.get("dynamodb", {}).get("NewImage", {}))
    if not ready_to_complete(image):
        return False
    return complete(engine, image["id"], str(record["eventID"]))


def complete(engine: AwsEngine, job_id: str, token: str) -> bool:
    """Mark the job complete and finish it, if this caller wins the write.

    Returns False when the job is not ready or another writer completed it.
    """
    now = engine.clock()
    claimed = engine.store.update_job(
        job_id,
        Update(
            set={"state": COMPLETED, "finished_at": now, "completion_token": token},
            condition=CLAIM,
            values={"running": RUNNING, "completed": COMPLETED, "token": token},
        ),
    )
    if claimed is None:
        logger.debug("job %s: not completed by %s (not ready or taken)", job_id, token)
        return False
    logger.info("job %s: completing (%s)", job_id, token)
    document = results_document(engine.store, engine.reports, job_id)
    body = json.dumps(document, indent=2).encode("utf-8")
    key = engine.reports.put_summary(job_id, body)
    engine.store.update_job(job_id, Update(set={"summary_key": key}))
    _fire_hooks(
        engine, job_id, claimed, hook_payload(document, engine.reports.locate(key))
    )
    engine.store.update_job(
        job_id,
        Update(set={"hooks_fired_at": engine.clock()}, remove=("sweep",)),
    )
    counts = document["job"]["counts"]
    logger.info(
        "job %s: completed, %d succeeded and %d failed of %d runs; results in %s",
        job_id,
        counts["succeeded"],
        counts["failed"],
        counts["total"],
        engine.reports.locate(key),
    )
    return True


def _fire_hooks(
    engine: AwsEngine, job_id: str, job: Mapping[str, Any], payload: dict[str, Any]
) -> None:
    hooks = [str(hook) for hook in job.get("hooks") or []]
    if hooks:
        delivered = post_hooks(job_id, hooks, payload)
        logger.info("job %s: %d of %d hooks delivered", job_id, delivered, len(hooks))
    if engine.config.completion_topic_arn:
        announce(
            engine.clients.sns, engine.config.completion_topic_arn, job_id, payload
        )
