"""The client behind ``lhfleet aws``, which uses the user's own credentials."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhfleet.aws.completion import REDELIVER_COMMAND
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.submit import Submission, submit_job
from lhfleet.errors import JobInterrupted, JobNotFinished
from lhfleet.hooks import Deliverer, HookCall, deliveries_document, hook_payload
from lhfleet.models import Job, JobSecrets, JobSettings, JobState, Target

logger = logging.getLogger(__name__)

POLL_SECONDS = 2.0


@dataclass(frozen=True)
class RetryOutcome:
    """The result of ``AwsClient.retry``: runs queued again and messages sent."""

    job_id: str
    requeued: int
    published: int


@dataclass(frozen=True)
class HooksOutcome:
    """A job's hook deliveries, and what a redelivery changed."""

    deliveries: list[dict[str, Any]]
    made_pending: int
    delivered: int


class AwsClient:
    """Submits jobs to the AWS engine and reads their progress and results."""

    def __init__(self, engine: AwsEngine) -> None:
        self.engine = engine
        self.owner = f"cli/{socket.gethostname()}/{os.getpid()}"

    def submit(
        self,
        targets: Sequence[Target],
        settings: JobSettings,
        secrets: JobSecrets,
        hooks: Sequence[str],
    ) -> Submission:
        """Store the job and publish its runs from here.

        If this process dies part way, the scheduled sweep resumes the
        fan-out once its lease lapses.
        """
        return submit_job(self.engine, targets, settings, secrets, hooks, self.owner)

    def job(self, job_id: str) -> Job:
        return self.engine.store.get_job(job_id)

    def retry(self, job_id: str) -> RetryOutcome:
        """Queue the job's failed runs again and send their messages from here.

        The job reopens and completes again when the runs settle. Its hooks
        that were delivered are not fired again, as with ``lhfleet retry``.
        If this process dies before the messages are sent, the sweep sends
        them once the publisher's lease lapses.
        """
        self.job(job_id)
        store, fanout = self.engine.store, self.engine.fanout
        count = store.requeue_failed(job_id, self.engine.clock(), self.owner)
        published = fanout.republish(job_id, self.owner) if count else 0
        return RetryOutcome(job_id, count, published)

    def hooks(self, job_id: str, redeliver: bool = False) -> HooksOutcome:
        """Return the job's hook deliveries; first redeliver the failed ones if asked.

        Redelivery runs here with the results document from S3, as
        ``lhfleet hooks --redeliver`` does for a local job.
        """
        ledger = self.engine.ledger
        self.job(job_id)
        pending = delivered = 0
        if redeliver:
            key = self.engine.store.job_values(job_id).get("summary_key")
            if not key:
                raise JobNotFinished(
                    f"Job {job_id} has not completed, so its hooks have not fired "
                    f"yet. Run `lhfleet aws watch {job_id}` to wait for it."
                )
            pending = ledger.redeliver_failed(job_id)
            location = self.engine.reports.locate(str(key))
            payload = hook_payload(self.summary(job_id), location)
            deliverer = Deliverer(
                ledger,
                owner=self.owner,
                clock=self.engine.clock,
                redeliver_command=REDELIVER_COMMAND,
            )
            call = HookCall(job_id, location, JobState.COMPLETED.value, payload)
            delivered = deliverer.deliver_owed(call)
        document = deliveries_document(ledger, job_id)
        return HooksOutcome(document, pending, delivered)

    def finished(self, job_id: str) -> bool:
        """Tell whether the job completed and its results document is written."""
        return "summary_key" in self.engine.store.job_values(job_id)

    def wait(
        self,
        job_id: str,
        on_progress: Callable[[Job], None] = lambda job: None,
        timeout: float | None = None,
        poll: float = POLL_SECONDS,
    ) -> Job:
        """Poll the job until its results are written.

        Raises JobInterrupted when ``timeout`` seconds pass first.
        """
        started = time.monotonic()
        while True:
            job = self.job(job_id)
            on_progress(job)
            if self.finished(job_id):
                return job
            if timeout is not None and time.monotonic() - started > timeout:
                raise JobInterrupted(
                    f"Job {job_id} has {job.pending} of {job.total} runs unsettled "
                    f"after {timeout:g} s of watching; it goes on in AWS. Run "
                    f"`lhfleet aws watch {job_id}` to follow it again."
                )
            time.sleep(poll)

    def summary(self, job_id: str) -> dict[str, Any]:
        """Return the job's results document from S3."""
        key = self.engine.store.job_values(job_id).get("summary_key")
        if not key:
            job = self.job(job_id)
            raise JobNotFinished(
                f"Job {job_id} has no results yet: {job.pending} of {job.total} "
                f"runs are unsettled. Run `lhfleet aws watch {job_id}` to wait."
            )
        document: dict[str, Any] = json.loads(self.engine.reports.read(str(key)))
        return document

    def download(self, job_id: str, folder: Path, reports: bool) -> list[Path]:
        """Save results.json, and each run's reports if asked, under ``folder``."""
        document = self.summary(job_id)
        target = folder / job_id
        target.mkdir(parents=True, exist_ok=True)
        saved = [target / "results.json"]
        saved[0].write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        if reports:
            for key in report_keys(document, self.engine.config.bucket):
                path = target / key.rsplit("/", 1)[-1]
                path.write_bytes(self.engine.reports.read(key))
                saved.append(path)
        logger.info("job %s: saved %d files in %s", job_id, len(saved), target)
        return saved


def report_keys(document: dict[str, Any], bucket: str) -> list[str]:
    """Return the S3 keys of every report a results document links to."""
    prefix = f"s3://{bucket}/"
    keys = []
    for entry in document["urls"]:
        for run in entry["runs"]:
            for link in (run["report_json"], run["report_html"]):
                if link and link.startswith(prefix):
                    keys.append(link.removeprefix(prefix))
    return keys
