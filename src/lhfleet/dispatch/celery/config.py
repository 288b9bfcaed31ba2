"""Settings of the cluster engine, from options and ``LHFLEET_*`` variables.

The timings fit together. A run's lease outlasts its deadline. The broker's
visibility timeout, after which Redis hands an unacknowledged task to
another worker, outlasts the lease. So a task is only delivered again
early when its worker is gone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from kombu.utils.url import maybe_sanitize_url

from lhfleet.auditor import INTERRUPT_GRACE
from lhfleet.errors import InvalidSettingError
from lhfleet.models import JobSettings

DEFAULT_BROKER = "redis://127.0.0.1:6379/0"
DEFAULT_QUEUE = "lhfleet"
BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


@dataclass(frozen=True)
class ClusterConfig:
    """The broker's URL and queue, and how long leases, waits and retries last."""

    broker: str = DEFAULT_BROKER
    queue: str = DEFAULT_QUEUE
    visibility_timeout: float = 3600.0
    """Seconds Redis waits before redelivering an unacknowledged task."""

    lease_margin: float = 60.0
    """Seconds a lease outlasts the run's deadline and Chrome's shutdown."""

    store_patience: float = 600.0
    """Seconds a worker retries a job store that is down before it gives up."""

    sweep_interval: float = 60.0
    """Seconds between two sweeps for runs whose task was lost; 0 disables."""

    stale_after: float | None = None
    """Seconds a due run may wait unclaimed before it is published again.

    None means the visibility timeout: by then the broker would have
    redelivered a task that still exists.
    """

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        broker: str | None = None,
        queue: str | None = None,
    ) -> ClusterConfig:
        env = os.environ if environ is None else environ
        config = cls(
            broker=broker or env.get("LHFLEET_BROKER") or DEFAULT_BROKER,
            queue=queue or env.get("LHFLEET_QUEUE") or DEFAULT_QUEUE,
            visibility_timeout=_seconds(env, "LHFLEET_VISIBILITY_TIMEOUT", 3600.0),
            lease_margin=_seconds(env, "LHFLEET_LEASE_MARGIN", 60.0),
            store_patience=_seconds(env, "LHFLEET_STORE_PATIENCE", 600.0),
            sweep_interval=_seconds(env, "LHFLEET_SWEEP_INTERVAL", 60.0),
            stale_after=_optional_seconds(env, "LHFLEET_STALE_AFTER"),
        )
        config.check_broker()
        return config

    @property
    def stale_seconds(self) -> float:
        return self.visibility_timeout if self.stale_after is None else self.stale_after

    @property
    def broker_display(self) -> str:
        """The broker URL with its password masked, for messages and logs."""
        return str(maybe_sanitize_url(self.broker))

    def lease_seconds(self, settings: JobSettings) -> float:
        """Return the seconds a worker leases a run of a job with these settings."""
        return settings.timeout + INTERRUPT_GRACE + self.lease_margin

    def check_broker(self) -> None:
        scheme = self.broker.partition("://")[0]
        if scheme not in BROKER_SCHEMES:
            raise InvalidSettingError(
                f"--broker is {self.broker_display!r}; use a Redis URL "
                "(redis://HOST:6379/0) or a RabbitMQ URL (amqp://USER:PASSWORD@HOST"
                ":5672//), or set LHFLEET_BROKER."
            )

    def check_settings(self, settings: JobSettings) -> None:
        """Reject a job whose runs would outlast the broker's visibility timeout."""
        lease = self.lease_seconds(settings)
        if lease >= self.visibility_timeout:
            raise InvalidSettingError(
                f"--timeout is {settings.timeout:g} s, so a run's lease lasts "
                f"{lease:g} s, which is not shorter than the broker's visibility "
                f"timeout of {self.visibility_timeout:g} s: Redis would hand the "
                "task to a second worker while the first still runs it. Lower "
                "--timeout or raise LHFLEET_VISIBILITY_TIMEOUT on the submitting "
                "host and on every worker."
            )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise InvalidSettingError(
            f"{name} is {text!r}; set it to a number of seconds, 0 or more."
        )
    return value


def _optional_seconds(env: Mapping[str, str], name: str) -> float | None:
    return _seconds(env, name, 0.0) if env.get(name) else None
