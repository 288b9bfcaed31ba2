"""Scale simulation of the AWS engine: many concurrent worker invocations on moto.

The script starts moto's standalone server on 127.0.0.1 and creates the
engine's resources with lhfleet.aws.provision. It submits one job of
``--urls`` times ``--runs`` runs and sends ``--duplicates`` extra copies of
run messages. Then ``--concurrency`` threads each play a worker invocation
in a loop: receive one message, call the worker handler with the SQS event
Lambda would send, and delete the message unless it failed. An invocation
ends at ``--invocation-timeout``, as Lambda ends it. A stream thread plays
the DynamoDB stream mapping for the completion handler, and a dead-letter
thread the dead-letter function.

Lighthouse is replaced by StandInAuditor, a stand-in that waits
``--audit-seconds`` and returns a canned result, because the benchmark
measures the engine's coordination (conditional writes, counters, the
single completion), not audits.

It prints a Markdown section for BENCHMARKS.md. The benchmark as recorded:

    .venv/bin/python bench/aws_scale.py

A smoke run:

    .venv/bin/python bench/aws_scale.py --urls 20 --runs 2 --concurrency 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lhfleet.auditor import Auditor, AuditRequest, AuditResult
from lhfleet.aws.config import AwsClients, AwsConfig
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.handlers import (
    handle_dead_letter_event,
    handle_stream_event,
    handle_worker_event,
)
from lhfleet.aws.provision import dead_letter_queue_url, provision, queue_arn
from lhfleet.aws.submit import submit_job
from lhfleet.aws.worker import RunWorker
from lhfleet.models import JobSecrets, JobSettings, Target
from lhfleet.runtime import Runtime

logger = logging.getLogger("bench.aws_scale")

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class InvocationTimedOut(BaseException):
    """Ends an invocation at its timeout, as Lambda does: nothing after it runs."""


class EmulatorGate:
    """Caps how many invocations talk to the emulator at once.

    moto's server is one Python process, and a thousand callers at once
    starve each of its request threads of the GIL until their calls time
    out. An invocation acquires the gate while it calls AWS and releases it
    during its audit, so every invocation can be auditing at the same time.

    Waiting for the gate can outlast an invocation's timeout, which Lambda
    would enforce. So an invocation whose deadline has passed when it gets
    the gate raises InvocationTimedOut and makes no further call.
    """

    def __init__(self, size: int) -> None:
        self.slots = threading.BoundedSemaphore(size)
        self.local = threading.local()

    @contextlib.contextmanager
    def hold(self, deadline: float) -> Iterator[None]:
        with self.slots:
            self.local.held = True
            self.local.deadline = deadline
            try:
                self._check_deadline()
                yield
            finally:
                self.local.held = False

    @contextlib.contextmanager
    def released(self) -> Iterator[None]:
        if not getattr(self.local, "held", False):
            yield
            return
        self.slots.release()
        try:
            yield
        finally:
            self.slots.acquire()
            self._check_deadline()

    def _check_deadline(self) -> None:
        if time.monotonic() > self.local.deadline:
            raise InvocationTimedOut


class StandInAuditor(Auditor):
    """A stand-in for Lighthouse: waits, then returns a small canned result."""

    def __init__(self, seconds: float, gate: EmulatorGate) -> None:
        super().__init__(
            Runtime(Path("node"), Path("lh"), Path("gen"), Path("chrome")), Path()
        )
        self.gate = gate
        self.seconds = seconds
        self.audits = 0
        self.auditing = 0
        self.peak = 0
        self.lock = threading.Lock()

    def audit(
        self,
        request: AuditRequest,
        label: str,
        owner: str,
        cancel: threading.Event | None = None,
    ) -> AuditResult:
        with self.lock:
            self.auditing += 1
            self.peak = max(self.peak, self.auditing)
        with self.gate.released():
            time.sleep(self.seconds)
            with self.lock:
                self.auditing -= 1
                self.audits += 1
        lhr = {
            "lighthouseVersion": "stand-in",
            "requestedUrl": request.url,
            "finalDisplayedUrl": request.url,
            "categories": {"performance": {"score": 0.9}},
            "audits": {
                "first-contentful-paint": {"numericValue": 900.0},
                "interactive": {"numericValue": 1500.0},
            },
        }
        return AuditResult(lhr, duration=self.seconds)

    def render_html(self, lhr_json: bytes) -> str:
        return "<html><body>stand-in report</body></html>"


@dataclass
class Context:
    """A stand-in for Lambda's context object, with the invocation's deadline."""

    aws_request_id: str
    deadline: float
    """``time.monotonic()`` at which Lambda would end the invocation."""

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class Tally:
    invocations: int = 0
    crashes: int = 0
    timed_out: int = 0
    """Invocations ended at their timeout (see EmulatorGate)."""
    dead_letters: int = 0
    """Messages the dead-letter consumer received."""
    returned: int = 0
    """Messages the handler reported as failed, to be delivered again."""
    stream_retries: int = 0
    """Stream batches the completion handler failed, delivered again from
    the failed record as Lambda does."""
    lock: threading.Lock = field(default_factory=threading.Lock)


class Invocations:
    """Plays Lambda's SQS event source mapping: pollers feed concurrent invocations.

    A few poller threads receive batches of up to ten messages and start one
    invocation per message, each on its own thread, while fewer than
    ``concurrency`` invocations are running.
    """

    def __init__(
        self,
        engine: AwsEngine,
        runs: RunWorker,
        concurrency: int,
        tally: Tally,
        gate: EmulatorGate,
        timeout: float,
    ) -> None:
        self.engine = engine
        self.timeout = timeout
        self.gate = gate
        self.runs = runs
        self.arn = queue_arn(engine.clients, engine.config.queue_url)
        self.tally = tally
        self.slots = threading.BoundedSemaphore(concurrency)
        self.pool = ThreadPoolExecutor(max_workers=concurrency)
        self.running = 0
        self.peak = 0
        self.finished: queue.Queue[str] = queue.Queue()

    def poll(self, done: threading.Event) -> None:
        """Receive and dispatch batches until ``done`` is set."""
        while not done.is_set():
            taken = self._take_slots(10, done)
            try:
                messages = self._receive(taken)
            except (BotoCoreError, ClientError) as error:
                logger.warning("ReceiveMessage failed, going on: %s", error)
                messages = []
            for _ in range(taken - len(messages)):
                self.slots.release()
            for message in messages:
                self.pool.submit(self._invoke, message)
            if not messages:
                done.wait(1.0)

    def _take_slots(self, wanted: int, done: threading.Event) -> int:
        taken = 0
        while taken < wanted and not done.is_set():
            if self.slots.acquire(timeout=0.1):
                taken += 1
            elif taken:
                break
        return taken

    def _receive(self, count: int) -> list[dict[str, Any]]:
        if count == 0:
            return []
        response = self.engine.clients.sqs.receive_message(
            QueueUrl=self.engine.config.queue_url,
            MaxNumberOfMessages=count,
            AttributeNames=["All"],
        )
        return [dict(message) for message in response.get("Messages", [])]

    def _invoke(self, message: dict[str, Any]) -> None:
        with self.tally.lock:
            self.tally.invocations += 1
            self.running += 1
            self.peak = max(self.peak, self.running)
            number = self.tally.invocations
        deadline = time.monotonic() + self.timeout
        try:
            with self.gate.hold(deadline):
                self._handle(message, number, deadline)
        except (BotoCoreError, ClientError) as error:
            logger.warning("invocation %d failed: %s", number, error)
            with self.tally.lock:
                self.tally.crashes += 1
        except InvocationTimedOut:
            with self.tally.lock:
                self.tally.timed_out += 1
        finally:
            with self.tally.lock:
                self.running -= 1
            self.slots.release()

    def _handle(self, message: dict[str, Any], number: int, deadline: float) -> None:
        record = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": {},
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": "us-east-1",
        }
        event = {"Records": [record]}
        context = Context(str(number), deadline)
        result = handle_worker_event(self.runs, event, context)
        if result["batchItemFailures"]:
            with self.tally.lock:
                self.tally.returned += 1
            return
        self.finished.put(str(message["ReceiptHandle"]))

    def delete_finished(self, done: threading.Event) -> None:
        """Delete handled messages ten at a time, as Lambda's poller does."""
        while not (done.is_set() and self.finished.empty()):
            handles: list[str] = []
            while len(handles) < 10 and not self.finished.empty():
                handles.append(self.finished.get())
            if not handles:
                time.sleep(0.2)
                continue
            try:
                self.engine.clients.sqs.delete_message_batch(
                    QueueUrl=self.engine.config.queue_url,
                    Entries=[
                        {"Id": str(number), "ReceiptHandle": handle}
                        for number, handle in enumerate(handles)
                    ],
                )
            except (BotoCoreError, ClientError) as error:
                logger.warning("DeleteMessageBatch failed, going on: %s", error)


def settled(engine: AwsEngine, job_id: str) -> bool:
    values = engine.store.job_values(job_id)
    return bool(values["settled"] >= values["total"])


def stream_loop(engine: AwsEngine, tally: Tally, stop: threading.Event) -> None:
    """Play the DynamoDB stream mapping: deliver new job records every 100 ms.

    A batch that the handler fails is delivered again from the failed
    record, as Lambda does.
    """
    import boto3  # noqa: PLC0415

    streams = boto3.client("dynamodbstreams")
    table = engine.clients.dynamodb.describe_table(TableName=engine.config.jobs_table)
    arn = table["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    iterator = streams.get_shard_iterator(
        StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    while not stop.is_set():
        try:
            response = streams.get_records(ShardIterator=iterator, Limit=100)
        except (BotoCoreError, ClientError) as error:
            logger.warning("GetRecords failed, going on: %s", error)
            stop.wait(1.0)
            continue
        iterator = response["NextShardIterator"]
        records: list[Mapping[str, Any]] = [
            {
                **record,
                "dynamodb": {**record["dynamodb"], "ApproximateCreationDateTime": 0},
            }
            for record in response["Records"]
        ]
        if records:
            result = handle_stream_event(engine, {"Records": records})
            for failure in result["batchItemFailures"][:1]:
                sequence = str(failure["itemIdentifier"])
                logger.warning("stream batch failed at record %s; again", sequence)
                with tally.lock:
                    tally.stream_retries += 1
                try:
                    iterator = streams.get_shard_iterator(
                        StreamArn=arn,
                        ShardId=shard["ShardId"],
                        ShardIteratorType="AT_SEQUENCE_NUMBER",
                        SequenceNumber=sequence,
                    )["ShardIterator"]
                except (BotoCoreError, ClientError) as error:
                    logger.error("GetShardIterator failed; record lost: %s", error)
        stop.wait(0.1)


def dead_letter_loop(engine: AwsEngine, tally: Tally, stop: threading.Event) -> None:
    """Play the dead-letter function: settle dead-lettered runs as failed."""
    queue_url = dead_letter_queue_url(engine.clients, engine.config)
    sqs = engine.clients.sqs
    while not stop.is_set():
        try:
            messages = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10
            ).get("Messages", [])
            records = [
                {"messageId": message["MessageId"], "body": message["Body"]}
                for message in messages
            ]
            result = handle_dead_letter_event(engine, {"Records": records})
            failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
            for message in messages:
                if message["MessageId"] not in failed:
                    sqs.delete_message(
                        QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
                    )
        except (BotoCoreError, ClientError) as error:
            logger.warning("dead-letter consumer failed, going on: %s", error)
            messages = []
        with tally.lock:
            tally.dead_letters += len(messages)
        if not messages:
            stop.wait(1.0)


def run_benchmark(arguments: argparse.Namespace) -> dict[str, Any]:
    clients = AwsClients("us-east-1")
    config: AwsConfig = provision(
        clients, "bench", visibility_timeout=arguments.visibility_timeout
    )
    engine = AwsEngine.build(config, clients)
    gate = EmulatorGate(arguments.emulator_calls)
    auditor = StandInAuditor(arguments.audit_seconds, gate)
    runs = RunWorker(engine, auditor, extra_chrome_flags=False)
    targets = [Target(f"http://site.test/page/{n}") for n in range(arguments.urls)]
    started = time.time()
    submission = submit_job(
        engine, targets, JobSettings(runs=arguments.runs), JobSecrets(), [], "bench"
    )
    job_id = submission.job.id
    fanned_out = time.time()
    duplicates = [
        f"{job_id}-{n % arguments.urls}-0" for n in range(arguments.duplicates)
    ]
    engine.fanout.send(duplicates)

    tally = Tally()
    stop = threading.Event()
    stream = threading.Thread(
        target=stream_loop, args=(engine, tally, stop), daemon=True
    )
    stream.start()
    dead_letters = threading.Thread(
        target=dead_letter_loop, args=(engine, tally, stop), daemon=True
    )
    dead_letters.start()
    announcements = subscribe(clients, config)
    invocations = Invocations(
        engine, runs, arguments.concurrency, tally, gate, arguments.invocation_timeout
    )
    invoke_until_settled(invocations, job_id, arguments.pollers)

    deadline = time.time() + 900
    while (
        "hooks_fired_at" not in engine.store.job_values(job_id)
        and time.time() < deadline
    ):
        time.sleep(0.05)
    stop.set()
    stream.join()
    dead_letters.join()
    result = summarize(engine, job_id, auditor, tally, started, fanned_out)
    result["completions"] = count_messages(clients, announcements)
    result["peak_concurrent_invocations"] = invocations.peak
    result["peak_concurrent_audits"] = auditor.peak
    return result


def invoke_until_settled(invocations: Invocations, job_id: str, count: int) -> None:
    """Run ``count`` pollers and a deleter until every run of the job settles."""
    done = threading.Event()
    threads = [
        threading.Thread(target=invocations.poll, args=(done,), daemon=True)
        for _ in range(count)
    ]
    threads.append(
        threading.Thread(target=invocations.delete_finished, args=(done,), daemon=True)
    )
    for thread in threads:
        thread.start()
    while not settled(invocations.engine, job_id):
        time.sleep(0.5)
    done.set()
    for thread in threads:
        thread.join()
    invocations.pool.shutdown(wait=True)


def subscribe(clients: AwsClients, config: AwsConfig) -> str:
    """Subscribe a queue to the completion topic; each completion sends one message."""
    completions = clients.sqs.create_queue(QueueName="bench-completions")["QueueUrl"]
    clients.sns.subscribe(
        TopicArn=config.completion_topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn(clients, completions),
    )
    return completions


def count_messages(clients: AwsClients, queue_url: str) -> int:
    count = 0
    while True:
        response = clients.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10
        )
        messages = response.get("Messages", [])
        if not messages:
            return count
        count += len(messages)
        for message in messages:
            clients.sqs.delete_message(
                QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def summarize(
    engine: AwsEngine,
    job_id: str,
    auditor: StandInAuditor,
    tally: Tally,
    started: float,
    fanned_out: float,
) -> dict[str, Any]:
    values = engine.store.job_values(job_id)
    failures = Counter(
        f"{run.error_code}: {run.error_message}"[:160]
        for run in engine.store.iter_runs(job_id)
        if run.error_code
    )
    finished = [
        run.finished_at.timestamp()
        for run in engine.store.iter_runs(job_id)
        if run.finished_at
    ]
    last_run = max(finished)
    return {
        "total": int(values["total"]),
        "succeeded": int(values["succeeded"]),
        "failed": int(values["failed"]),
        "settled": int(values["settled"]),
        "audits": auditor.audits,
        "invocations": tally.invocations,
        "crashed_invocations": tally.crashes,
        "invocations_timed_out": tally.timed_out,
        "dead_letter_messages": tally.dead_letters,
        "messages_returned_to_queue": tally.returned,
        "stream_batches_retried": tally.stream_retries,
        "state": values["state"],
        "failure_reasons": dict(failures),
        "fanout_seconds": round(fanned_out - started, 2),
        "first_to_last_run_seconds": round(last_run - min(finished), 2),
        "last_run_to_completion_seconds": _since(values.get("finished_at"), last_run),
        "last_run_to_results_seconds": _since(values.get("hooks_fired_at"), last_run),
        "wall_seconds": round(time.time() - started, 1),
    }


def _since(moment: float | None, start: float) -> float | None:
    """Return seconds from ``start`` to ``moment``, or None if it never came."""
    return None if moment is None else round(moment - start, 3)


def markdown(arguments: argparse.Namespace, result: dict[str, Any]) -> str:
    command = (
        f"python bench/aws_scale.py --urls {arguments.urls} --runs {arguments.runs} "
        f"--concurrency {arguments.concurrency} --duplicates {arguments.duplicates} "
        f"--pollers {arguments.pollers} --emulator-calls {arguments.emulator_calls} "
        f"--audit-seconds {arguments.audit_seconds:g} "
        f"--invocation-timeout {arguments.invocation_timeout:g} "
        f"--visibility-timeout {arguments.visibility_timeout}"
    )
    rows = "\n".join(f"| {key} | {value} |" for key, value in result.items())
    return (
        f"Command: `{command}`\n\n"
        f"Hardware: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}, load average at the end "
        f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n\n"
        f"| figure | value |\n|---|---|\n{rows}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=500)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=1000)
    parser.add_argument("--duplicates", type=int, default=50)
    parser.add_argument("--pollers", type=int, default=2)
    parser.add_argument(
        "--emulator-calls",
        type=int,
        default=16,
        help="invocations calling the emulator at once (see EmulatorGate)",
    )
    parser.add_argument("--audit-seconds", type=float, default=1.0)
    parser.add_argument(
        "--invocation-timeout",
        type=float,
        default=300.0,
        help="seconds a worker invocation may take (the template's WorkerTimeout)",
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=1800,
        help="the run queue's visibility timeout in seconds (the template's "
        "default, 6 times WorkerTimeout)",
    )
    arguments = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    with emulator() as endpoint:
        os.environ.update(ENVIRONMENT, AWS_ENDPOINT_URL=endpoint)
        result = run_benchmark(arguments)
    print(json.dumps(result, indent=2))
    print(markdown(arguments, result))


@contextlib.contextmanager
def emulator() -> Iterator[str]:
    """Run moto's server in its own process, so it does not share our GIL.

    It is lhfleet.aws.emulator, which handles one request at a time, because
    moto's own threaded server lets concurrent conditional writes to one
    item both succeed.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "lhfleet.aws.emulator", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"moto's server did not listen on port {port} in 30 s")


if __name__ == "__main__":
    main()
