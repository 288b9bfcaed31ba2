"""The AWS engine's parts, wired once per process from an AwsConfig."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from lhfleet.aws.config import AwsClients, AwsConfig
from lhfleet.aws.fanout import FanOut
from lhfleet.aws.hook_ledger import DynamoHookLedger
from lhfleet.aws.reports import S3ReportStore
from lhfleet.aws.store import DynamoJobStore


@dataclass
class AwsEngine:
    """The job store, report store, hook ledger and fan-out on one AWS deployment."""

    config: AwsConfig
    clients: AwsClients
    store: DynamoJobStore
    reports: S3ReportStore
    ledger: DynamoHookLedger
    fanout: FanOut
    clock: Callable[[], float] = time.time

    @classmethod
    def build(
        cls,
        config: AwsConfig,
        clients: AwsClients | None = None,
        clock: Callable[[], float] = time.time,
    ) -> AwsEngine:
        config.require("bucket", "queue_url")
        clients = clients or AwsClients()
        store = DynamoJobStore(clients.dynamodb, config)
        reports = S3ReportStore(clients.s3, config.bucket)
        ledger = DynamoHookLedger(clients.dynamodb, config, store)
        fanout = FanOut(store, clients, config, clock)
        return cls(config, clients, store, reports, ledger, fanout, clock)

    @classmethod
    def from_env(cls) -> AwsEngine:
        return cls.build(AwsConfig.from_env())
