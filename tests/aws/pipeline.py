"""A deployment's functions wired to moto's server, for the pipeline tests.

``build_pipeline`` feeds the worker, dead-letter and completion handlers
from their event sources (``QueuePoller``, ``StreamPoller``), and
``HookServer`` receives the completion hooks on 127.0.0.1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from lhfleet.aws.config import AwsClients
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.handlers import (
    handle_dead_letter_event,
    handle_stream_event,
    handle_worker_event,
)
from lhfleet.aws.provision import dead_letter_queue_url, queue_arn
from lhfleet.aws.reports import summary_key
from lhfleet.aws.submit import Submission, submit_job
from lhfleet.aws.worker import RunWorker
from lhfleet.models import JobSecrets, JobSettings, Target
from tests.aws.harness import CannedAuditor, QueuePoller, StreamPoller


class HookServer(ThreadingHTTPServer):
    """A webhook receiver; the first requests get ``statuses``, later ones 204."""

    received: list[dict[str, Any]]
    statuses: list[int]


class HookHandler(BaseHTTPRequestHandler):
    server: HookServer

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.received.append(json.loads(self.rfile.read(length)))
        status = self.server.statuses.pop(0) if self.server.statuses else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@dataclass
class Pipeline:
    """The functions of one deployment, each fed by its own event source."""

    engine: AwsEngine
    clients: AwsClients
    auditor: CannedAuditor
    workers: QueuePoller
    dead_letters: QueuePoller
    stream: StreamPoller
    announcements: str
    hooks: list[str] = field(default_factory=list)

    def submit(self, urls: int, runs: int, **options: Any) -> Submission:
        targets = [Target(f"http://site.test/{n}") for n in range(urls)]
        settings = JobSettings(runs=runs, retries=options.pop("retries", 2))
        return submit_job(
            self.engine,
            targets,
            settings,
            JobSecrets(),
            self.hooks,
            owner="test-submit",
            **options,
        )

    def settled(self, job_id: str) -> bool:
        values = self.engine.store.job_values(job_id)
        return bool(values["settled"] >= values["total"])

    def run_to_completion(self, job_id: str, timeout: float = 30.0) -> None:
        self.workers.drain(lambda: self.settled(job_id), timeout)
        self.stream.poll_once()

    def announcement_count(self) -> int:
        count = 0
        while True:
            response = self.clients.sqs.receive_message(
                QueueUrl=self.announcements, MaxNumberOfMessages=10
            )
            messages = response.get("Messages", [])
            if not messages:
                return count
            count += len(messages)
            for message in messages:
                self.clients.sqs.delete_message(
                    QueueUrl=self.announcements, ReceiptHandle=message["ReceiptHandle"]
                )


def build_pipeline(
    engine: AwsEngine, clients: AwsClients, auditor: CannedAuditor
) -> Pipeline:
    runs = RunWorker(engine, auditor, extra_chrome_flags=False)
    workers = QueuePoller(
        clients,
        engine.config.queue_url,
        lambda event, context: handle_worker_event(runs, event, context),
    )
    dead_letters = QueuePoller(
        clients,
        dead_letter_queue_url(clients, engine.config),
        lambda event, context: handle_dead_letter_event(engine, event),
    )
    stream = StreamPoller(
        clients,
        engine.config.jobs_table,
        lambda event, context: handle_stream_event(engine, event),
    )
    announcements = clients.sqs.create_queue(
        QueueName=engine.config.jobs_table + "-announcements"
    )["QueueUrl"]
    clients.sns.subscribe(
        TopicArn=engine.config.completion_topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn(clients, announcements),
    )
    return Pipeline(
        engine, clients, auditor, workers, dead_letters, stream, announcements
    )


def summary(pipeline: Pipeline, job_id: str) -> dict[str, Any]:
    body = pipeline.engine.reports.read(summary_key(job_id))
    document: dict[str, Any] = json.loads(body)
    return document
