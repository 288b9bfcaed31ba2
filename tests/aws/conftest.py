"""Fixtures of the AWS tests: moto's standalone server on loopback, and resources."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lhfleet.aws.config import AwsClients, AwsConfig
from lhfleet.aws.emulator import SerialMotoServer
from lhfleet.aws.engine import AwsEngine
from lhfleet.aws.provision import provision
from tests.aws.harness import CannedAuditor
from tests.aws.pipeline import HookHandler, HookServer, Pipeline, build_pipeline

pytestmark = pytest.mark.aws

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/aws/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.aws)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """Start moto's server on a free loopback port and point boto3 at it.

    It handles one request at a time, because moto's own threaded server
    lets concurrent conditional writes to one item both succeed.
    """
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = SerialMotoServer()
    endpoint = server.start()
    saved = {key: os.environ.get(key) for key in [*ENVIRONMENT, "AWS_ENDPOINT_URL"]}
    os.environ.update(ENVIRONMENT, AWS_ENDPOINT_URL=endpoint)
    yield endpoint
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@dataclass
class Clock:
    """A clock the test moves forward, for leases that would take minutes."""

    offset: float = 0.0

    def __call__(self) -> float:
        import time  # noqa: PLC0415

        return time.time() + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def clients(moto_endpoint: str) -> AwsClients:
    return AwsClients("us-east-1")


@pytest.fixture
def config(clients: AwsClients) -> AwsConfig:
    return provision(
        clients, f"t{uuid.uuid4().hex[:10]}", visibility_timeout=1, max_receive_count=3
    )


@pytest.fixture
def engine(config: AwsConfig, clients: AwsClients, clock: Clock) -> AwsEngine:
    return AwsEngine.build(config, clients, clock)


@pytest.fixture
def hook_server() -> Iterator[HookServer]:
    server = HookServer(("127.0.0.1", 0), HookHandler)
    server.received = []
    server.statuses = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.fixture
def pipeline(
    engine: AwsEngine, clients: AwsClients, hook_server: HookServer
) -> Pipeline:
    built = build_pipeline(engine, clients, CannedAuditor())
    built.hooks = [f"http://127.0.0.1:{hook_server.server_address[1]}/done"]
    return built
