"""Race settling transactions on moto's server, with and without lhfleet's lock.

For each of ``--runs`` run items, ``--contenders`` threads start together
and each sends the transaction with which lhfleet's AWS engine settles a
run: the run's update conditioned on its state being ``running``, and an
ADD of 1 to the job's ``settled`` counter. DynamoDB lets exactly one of
them succeed per run, so both figures below must equal ``--runs``.

The script starts each server in its own process on 127.0.0.1: moto's own
threaded server (``python -m moto.server``) and lhfleet.aws.emulator, which
runs moto's application for one request at a time. It prints one line per
server:

    .venv/bin/python bench/emulator_race.py
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}
SERVERS = {
    "moto.server (no lock)": ["-m", "moto.server", "-H", "127.0.0.1", "-p"],
    "lhfleet.aws.emulator (one request at a time)": [
        "-m",
        "lhfleet.aws.emulator",
        "--port",
    ],
}


def settle_item(run: int) -> list[Any]:
    """Return the transaction that settles run ``run`` and counts it on the job."""
    return [
        {
            "Update": {
                "TableName": "runs",
                "Key": {"id": {"S": f"run-{run}"}},
                "UpdateExpression": "SET #state = :succeeded",
                "ConditionExpression": "#state = :running",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {
                    ":succeeded": {"S": "succeeded"},
                    ":running": {"S": "running"},
                },
            }
        },
        {
            "Update": {
                "TableName": "jobs",
                "Key": {"id": {"S": "job"}},
                "UpdateExpression": "ADD #settled :one",
                "ExpressionAttributeNames": {"#settled": "settled"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
    ]


def race(endpoint: str, runs: int, contenders: int) -> tuple[int, int]:
    """Return how many settling transactions succeeded and the job's counter."""
    clients: list[DynamoDBClient] = [
        boto3.client("dynamodb", endpoint_url=endpoint) for _ in range(contenders)
    ]
    admin = clients[0]
    for table in ("jobs", "runs"):
        admin.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    admin.put_item(TableName="jobs", Item={"id": {"S": "job"}, "settled": {"N": "0"}})
    for run in range(runs):
        admin.put_item(
            TableName="runs",
            Item={"id": {"S": f"run-{run}"}, "state": {"S": "running"}},
        )
    succeeded = [0]
    lock = threading.Lock()

    def settle(client: DynamoDBClient, run: int, start: threading.Barrier) -> None:
        start.wait()
        try:
            client.transact_write_items(TransactItems=settle_item(run))
        except ClientError:
            return
        with lock:
            succeeded[0] += 1

    for run in range(runs):
        start = threading.Barrier(contenders)
        threads = [
            threading.Thread(target=settle, args=(client, run, start))
            for client in clients
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    item = admin.get_item(TableName="jobs", Key={"id": {"S": "job"}})["Item"]
    return succeeded[0], int(item["settled"]["N"])


@contextlib.contextmanager
def server(arguments: list[str]) -> Iterator[str]:
    """Run a server module in its own process on a free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, *arguments, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the server did not listen on port {port} in 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--contenders", type=int, default=8)
    options = parser.parse_args()
    os.environ.update(ENVIRONMENT)
    for name, arguments in SERVERS.items():
        with server(arguments) as endpoint:
            succeeded, counted = race(endpoint, options.runs, options.contenders)
        print(
            f"{name}: {options.runs} runs, {options.contenders} contenders each: "
            f"{succeeded} settling transactions succeeded, job counter {counted}"
        )


if __name__ == "__main__":
    main()
