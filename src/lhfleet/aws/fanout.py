"""The fan-out: one message per run, through SQS or an SNS topic that feeds it.

The job item records how far the fan-out got (``fanout_published``) and who
is publishing (a lease), and both move with one conditional write per batch
of ten. A fan-out cut short by a Lambda timeout or a crash resumes from
that cursor under the next lease holder. The submit handler hands over at
once when it runs out of time, and the sweeper takes over a lapsed lease.
A crash between sending a batch and moving the cursor sends that batch
again on resume, which the worker's conditional writes make harmless.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lhfleet.aws.config import AwsClients, AwsConfig
from lhfleet.aws.expressions import Update
from lhfleet.aws.store import QUEUED, REPUBLISH_LEASE, DynamoJobStore
from lhfleet.errors import AwsServiceError
from lhfleet.models import Job, run_id
from lhfleet.ports import Dispatcher

logger = logging.getLogger(__name__)

BATCH = 10
"""Entries per SendMessageBatch or PublishBatch: the most either accepts."""

LEASE_SECONDS = 60.0
TIME_MARGIN = 5.0
"""Seconds of invocation time kept back to hand the fan-out over cleanly."""

SEND_ATTEMPTS = 5
REPUBLISH_CHUNK = 100
"""Run messages a republish sends between renewals of its lease."""
QUEUED_ONLY = {"queued": QUEUED}


@dataclass(frozen=True)
class FanOutProgress:
    job_id: str
    published: int
    total: int

    @property
    def done(self) -> bool:
        return self.published >= self.total


def run_message(job_id: str, run: str) -> str:
    return json.dumps({"job_id": job_id, "run_id": run}, separators=(",", ":"))


def run_at(job_id: str, position: int, url_count: int) -> str:
    """Return the id of the run published at ``position``: every URL's run 0 first.

    Spreading a URL's runs over the fan-out keeps them from being audited
    all at once, as the local engine's claim order does.
    """
    index, url_index = divmod(position, url_count)
    return run_id(job_id, url_index, index)


class FanOut:
    """Publishes a job's run messages from its cursor, under a lease."""

    def __init__(
        self,
        store: DynamoJobStore,
        clients: AwsClients,
        config: AwsConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.clients = clients
        self.config = config
        self.clock = clock
        self.batch_size = BATCH
        """Messages per batch and per cursor move; tests make it smaller."""

    def publish(
        self,
        job_id: str,
        owner: str,
        time_left: Callable[[], float] = lambda: math.inf,
    ) -> FanOutProgress:
        """Publish the job's remaining runs while ``time_left()`` allows."""
        values = self._acquire(job_id, owner)
        if values is None:
            current = self.store.job_values(job_id)
            logger.info("job %s: fan-out done or held by another publisher", job_id)
            return FanOutProgress(job_id, current["fanout_published"], current["total"])
        cursor, total = int(values["fanout_published"]), int(values["total"])
        url_count = int(values["url_count"])
        logger.info("job %s: fan-out from %d of %d by %s", job_id, cursor, total, owner)
        while cursor < total:
            if time_left() < TIME_MARGIN:
                self._hand_over(job_id, owner)
                logger.warning(
                    "job %s: fan-out paused at %d of %d", job_id, cursor, total
                )
                return FanOutProgress(job_id, cursor, total)
            end = min(cursor + self.batch_size, total)
            self.send([run_at(job_id, at, url_count) for at in range(cursor, end)])
            if not self._advance(job_id, owner, cursor, end):
                logger.warning("job %s: fan-out lease lost at %d", job_id, cursor)
                return FanOutProgress(job_id, cursor, total)
            cursor = end
        self._finish(job_id, owner)
        logger.info("job %s: fan-out complete, %d messages", job_id, total)
        return FanOutProgress(job_id, cursor, total)

    def republish(self, job_id: str, owner: str) -> int:
        """Send a message for each queued run of a job that a retry reopened.

        Returns how many were sent; 0 when no messages are owed or another
        publisher holds the lease. Runs whose earlier messages are still in
        the queue get a second one, which the worker drops as a duplicate.
        """
        values = self._acquire_republish(job_id, owner)
        if values is None:
            logger.info("job %s: no run messages owed, or another publisher", job_id)
            return 0
        token = str(values["republish"])
        queued = [
            str(run["run_id"])
            for run in self.store.query_runs(job_id, "#state = :queued", QUEUED_ONLY)
        ]
        for start in range(0, len(queued), REPUBLISH_CHUNK):
            self.send(queued[start : start + REPUBLISH_CHUNK])
            if not self._renew_republish(job_id, owner, token):
                logger.warning(
                    "job %s: republish lease lost after %d of %d messages",
                    job_id,
                    start + REPUBLISH_CHUNK,
                    len(queued),
                )
                return min(len(queued), start + REPUBLISH_CHUNK)
        done = Update(
            remove=("republish", "republish_owner", "republish_until"),
            condition="#republish = :token AND #republish_owner = :owner",
            values={"token": token, "owner": owner},
        )
        if self.store.update_job(job_id, done) is None:
            logger.info("job %s: another retry needs its messages sent too", job_id)
        logger.info("job %s: sent %d messages of queued runs", job_id, len(queued))
        return len(queued)

    def _acquire_republish(self, job_id: str, owner: str) -> dict[str, Any] | None:
        now = self.clock()
        return self.store.update_job(
            job_id,
            Update(
                set={
                    "republish_owner": owner,
                    "republish_until": now + REPUBLISH_LEASE,
                },
                condition="attribute_exists(#republish) AND ("
                "attribute_not_exists(#republish_until) "
                "OR #republish_until < :now OR #republish_owner = :owner)",
                values={"now": now, "owner": owner},
            ),
        )

    def _renew_republish(self, job_id: str, owner: str, token: str) -> bool:
        update = Update(
            set={"republish_until": self.clock() + REPUBLISH_LEASE},
            condition="#republish = :token AND #republish_owner = :owner",
            values={"token": token, "owner": owner},
        )
        return self.store.update_job(job_id, update) is not None

    def send(self, run_ids: Sequence[str]) -> None:
        """Send one message per run id, at most ``batch_size`` at a time."""
        for start in range(0, len(run_ids), self.batch_size):
            chunk = run_ids[start : start + self.batch_size]
            entries = {
                str(number): run_message(run.rsplit("-", 2)[0], run)
                for number, run in enumerate(chunk)
            }
            self._send_batch(entries)

    def _send_batch(self, entries: dict[str, str]) -> None:
        for attempt in range(1, SEND_ATTEMPTS + 1):
            failed = self._deliver(entries)
            if not failed:
                return
            logger.warning(
                "%d messages not accepted (%s); retrying", len(failed), failed
            )
            entries = {key: entries[key] for key in failed}
            time.sleep(0.2 * attempt)
        target = self.config.fanout_topic_arn or self.config.queue_url
        raise AwsServiceError(
            f"{len(entries)} run messages were not accepted by {target} after "
            f"{SEND_ATTEMPTS} attempts. The fan-out resumes from its cursor on "
            "the next sweep; check the queue or topic and its permissions."
        )

    def _deliver(self, entries: dict[str, str]) -> list[str]:
        response: Any
        if self.config.fanout_topic_arn:
            response = self.clients.sns.publish_batch(
                TopicArn=self.config.fanout_topic_arn,
                PublishBatchRequestEntries=[
                    {"Id": key, "Message": body} for key, body in entries.items()
                ],
            )
        else:
            response = self.clients.sqs.send_message_batch(
                QueueUrl=self.config.queue_url,
                Entries=[
                    {"Id": key, "MessageBody": body} for key, body in entries.items()
                ],
            )
        return [entry["Id"] for entry in response.get("Failed", [])]

    def _acquire(self, job_id: str, owner: str) -> dict[str, Any] | None:
        now = self.clock()
        return self.store.update_job(
            job_id,
            Update(
                set={
                    "fanout_lease_owner": owner,
                    "fanout_lease_until": now + LEASE_SECONDS,
                },
                condition="#fanout_published < #total AND ("
                "attribute_not_exists(#fanout_lease_until) "
                "OR #fanout_lease_until < :now OR #fanout_lease_owner = :owner)",
                values={"now": now, "owner": owner},
            ),
        )

    def _advance(self, job_id: str, owner: str, start: int, end: int) -> bool:
        update = Update(
            set={
                "fanout_published": end,
                "fanout_lease_until": self.clock() + LEASE_SECONDS,
            },
            condition="#fanout_lease_owner = :owner AND #fanout_published = :start",
            values={"owner": owner, "start": start},
        )
        return self.store.update_job(job_id, update) is not None

    def _hand_over(self, job_id: str, owner: str) -> None:
        update = Update(
            set={"fanout_lease_until": 0},
            condition="#fanout_lease_owner = :owner",
            values={"owner": owner},
        )
        self.store.update_job(job_id, update)

    def _finish(self, job_id: str, owner: str) -> None:
        update = Update(
            remove=("fanout_lease_owner", "fanout_lease_until"),
            condition="#fanout_lease_owner = :owner",
            values={"owner": owner},
        )
        self.store.update_job(job_id, update)


class SqsDispatcher(Dispatcher):
    """The AWS engine's Dispatcher: returns once every run message is published."""

    def __init__(self, fanout: FanOut, owner: str) -> None:
        self.fanout = fanout
        self.owner = owner

    def dispatch(self, job: Job, stop: threading.Event) -> None:
        self.fanout.publish(
            job.id, self.owner, lambda: 0.0 if stop.is_set() else math.inf
        )
