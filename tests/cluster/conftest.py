"""Fixtures of the cluster tests: PostgreSQL, brokers, moto's S3 server, workers."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from kombu import Connection, Exchange, Queue
from kombu.exceptions import KombuError
from moto.server import ThreadedMotoServer

from lhfleet.store.sql import SqlJobStore, sqlite_url
from tests.cluster.harness import (
    SHARED_RABBITMQ,
    SHARED_REDIS,
    Cluster,
    ClusterFactory,
    Database,
    cluster_env,
    reachable,
)

AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.cluster)


def _require(host: str, port: int, what: str) -> None:
    if not reachable(host, port):
        pytest.skip(f"{what} is not reachable on {host}:{port}")


@pytest.fixture
def database() -> Iterator[Database]:
    """A fresh PostgreSQL database on the machine's server."""
    _require("127.0.0.1", 5432, "PostgreSQL")
    created = Database()
    yield created
    created.drop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def sql_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlJobStore]:
    """A SqlJobStore on SQLite, then on PostgreSQL, shared by a module's tests.

    Each test makes its own job, so the tests do not see each other's runs.
    """
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("sqlite")
        store = SqlJobStore(sqlite_url(folder / "jobs.db"))
        yield store
        store.close()
        return
    _require("127.0.0.1", 5432, "PostgreSQL")
    created = Database()
    store = SqlJobStore(created.url().replace("postgresql://", "postgresql+psycopg://"))
    yield store
    store.close()
    created.drop()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start moto's S3 server on a free loopback port; point boto3 at it."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {key: os.environ.get(key) for key in [*AWS_ENVIRONMENT, "AWS_ENDPOINT_URL"]}
    os.environ.update(AWS_ENVIRONMENT, AWS_ENDPOINT_URL=endpoint)
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    """A new, empty bucket on moto's server."""
    name = f"lhfleet-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture
def redis_broker() -> str:
    _require("127.0.0.1", 6379, "Redis")
    return SHARED_REDIS


@pytest.fixture
def rabbitmq_broker() -> str:
    _require("127.0.0.1", 5672, "RabbitMQ")
    return SHARED_RABBITMQ


@pytest.fixture
def make_cluster(tmp_path: Path) -> Iterator[ClusterFactory]:
    """Build clusters for a test, and stop their workers at its end."""
    built: list[Cluster] = []

    def make(store: str, broker: str, reports: str, **extra: str) -> Cluster:
        cluster = Cluster(
            tmp_path, cluster_env(tmp_path, store, broker, reports, **extra)
        )
        built.append(cluster)
        return cluster

    yield make
    for cluster in built:
        cluster.stop()
        delete_queue(cluster.env["LHFLEET_BROKER"], cluster.env["LHFLEET_QUEUE"])


def delete_queue(broker: str, queue: str) -> None:
    """Remove a test's queue from the broker, which other tests share."""
    try:
        with Connection(broker, connect_timeout=5) as connection:
            bound = Queue(queue, Exchange(queue), routing_key=queue)
            bound.bind(connection.default_channel).delete()
    except (OSError, KombuError) as error:
        logging.getLogger(__name__).info(
            "queue %s left on %s: %s", queue, broker, error
        )
