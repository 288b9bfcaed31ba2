"""Completion: once per job, aggregate the results, store them, fire the hooks.

The jobs table's stream handler calls ``complete`` when an image shows
every run settled. One conditional write moves the job from running to
completed and records the stream record's id as ``completion_token``:
only one writer wins it. A retry of the same record (Lambda retries a
failed batch) carries the same token, so it may finish a completion that
crashed part way, until ``hooks_fired_at`` is recorded.

Hooks go through the hook ledger, as on the local and cluster engines: a
delivery is leased, fired with retries, and settled with conditional
writes, so a completion that runs twice fires each hook once. A retry of
the job (``lhfleet aws retry``) completes it again, and its hooks stay
delivered, as ``lhfleet retry`` leaves them. Every write after the claim
is conditioned on the token, so a completion that a retry overtook stops.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.expressions import Update
from lhfleet.aws.hooks import announce, webhook_specs
from lhfleet.aws.items import plain
from lhfleet.hooks import Deliverer, HookCall, hook_payload
from lhfleet.models import JobState
from lhfleet.results import results_document
from lhfleet.store.hook_ledger import OWED

logger = logging.getLogger(__name__)

RUNNING, COMPLETED = JobState.RUNNING.value, JobState.COMPLETED.value
CLAIM = (
    "(#state = :running AND #settled >= #total) OR (#state = :completed "
    "AND #completion_token = :token AND attribute_not_exists(#hooks_fired_at))"
)
REDELIVER_COMMAND = "lhfleet aws hooks {job_id} --redeliver"


def ready_to_complete(image: Mapping[str, Any]) -> bool:
    """Tell whether a job item's values show a running job with every run settled."""
    return (
        image.get("state") == RUNNING
        and "settled" in image
        and "total" in image
        and image["settled"] >= image["total"]
    )


def handle_stream_record(
    engine: AwsEngine, record: Mapping[str, Any], owner: str | None = None
) -> bool:
    """Complete the job of a jobs-table stream record if it is ready; True if done."""
    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return False
    image = plain(record.get("dynamodb", {}).get("NewImage", {}))
    if not ready_to_complete(image):
        return False
    return complete(engine, image["id"], str(record["eventID"]), owner)


def complete(
    engine: AwsEngine, job_id: str, token: str, owner: str | None = None
) -> bool:
    """Mark the job complete and finish it, if this caller wins the write.

    ``owner`` names this caller in the hook ledger's leases; by default a
    new id. Returns False when the job is not ready, another writer
    completed it, or a retry reopened it part way.
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
    if not _record(engine, job_id, token, {"summary_key": key}):
        return False
    location = engine.reports.locate(key)
    payload = hook_payload(document, location)
    owed = _deliver_hooks(engine, claimed, location, payload, owner)
    if engine.config.completion_topic_arn and "announced_at" not in claimed:
        topic = engine.config.completion_topic_arn
        if announce(engine.clients.sns, topic, job_id, payload):
            _record(engine, job_id, token, {"announced_at": engine.clock()})
    if owed:
        # The sweep finishes this completion once the leases lapse.
        logger.warning(
            "job %s: %d hook deliveries are leased by an earlier completion that "
            "stopped; the sweep delivers them when the lease lapses",
            job_id,
            owed,
        )
    elif not _record(engine, job_id, token, {"hooks_fired_at": engine.clock()}, True):
        return False
    counts = document["job"]["counts"]
    logger.info(
        "job %s: completed, %d succeeded and %d failed of %d runs; results in %s",
        job_id,
        counts["succeeded"],
        counts["failed"],
        counts["total"],
        location,
    )
    return True


def _record(
    engine: AwsEngine,
    job_id: str,
    token: str,
    values: Mapping[str, Any],
    done: bool = False,
) -> bool:
    """Write ``values`` on the job unless a retry reopened it since the claim.

    ``done`` also takes the job off the sweep index. Returns False, and
    logs it, when the job was reopened.
    """
    update = Update(
        set=values,
        remove=("sweep",) if done else (),
        condition="#state = :completed AND #completion_token = :token",
        values={"completed": COMPLETED, "token": token},
    )
    if engine.store.update_job(job_id, update) is not None:
        return True
    logger.warning(
        "job %s: reopened by a retry while completing (%s); the next completion "
        "writes its results",
        job_id,
        token,
    )
    return False


def _deliver_hooks(
    engine: AwsEngine,
    job: Mapping[str, Any],
    location: str,
    payload: dict[str, Any],
    owner: str | None,
) -> int:
    """Record the job's hooks in the ledger, deliver those owed; return how many
    are still owed (leased by a completion that stopped)."""
    job_id = str(job["id"])
    specs = webhook_specs(job_id, [str(url) for url in job.get("hooks") or []])
    if not specs:
        return 0
    engine.ledger.add_hooks(job_id, specs, engine.clock())
    deliverer = Deliverer(
        engine.ledger,
        owner=owner or f"lambda/completion/{uuid.uuid4().hex}",
        clock=engine.clock,
        redeliver_command=REDELIVER_COMMAND,
    )
    call = HookCall(job_id, location, COMPLETED, payload)
    delivered = deliverer.deliver_owed(call)
    deliveries = engine.ledger.deliveries(job_id)
    owed = sum(delivery.state in OWED for delivery in deliveries)
    logger.info(
        "job %s: %d of %d hooks delivered now, %d still owed",
        job_id,
        delivered,
        len(deliveries),
        owed,
    )
    return owed
