"""Keeps a Redis-fed worker consuming after Redis comes back from a restart.

kombu's Redis transport counts a delivered message as unacknowledged until
its acknowledgement reaches Redis. When Redis goes away while a task runs,
that acknowledgement fails and the count never drops. With a prefetch limit
of one, the worker then stops fetching tasks. It does not notice that its
connection broke either, so it never reconnects. (Measured with kombu 5.7 and
redis-py 8.2: the worker logs "Couldn't ack" and then sits idle.)

The fix frees the worker's local slot when the acknowledgement fails. The
message stays in Redis's index of unacknowledged messages and is delivered
again after the visibility timeout; a second delivery of a settled run ends
at once, so nothing is audited twice.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

logger = logging.getLogger(__name__)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = tuple(
    kombu_redis.Transport.connection_errors
)


class ResilientQoS(kombu_redis.QoS):
    """kombu's Redis QoS, which releases the prefetch slot even if Redis is gone."""

    def ack(self, delivery_tag: Any) -> None:
        try:
            super().ack(delivery_tag)
        except CONNECTION_ERRORS:
            self._release_slot(delivery_tag)
            raise

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        try:
            super().reject(delivery_tag, requeue=requeue)
        except CONNECTION_ERRORS:
            self._release_slot(delivery_tag)
            raise

    def _release_slot(self, delivery_tag: Any) -> None:
        logger.warning(
            "Redis is unreachable; message %s stays unacknowledged there and "
            "comes back after the visibility timeout",
            delivery_tag,
        )
        virtual.QoS.ack(self, delivery_tag)


def install() -> None:
    """Make kombu's Redis channels use ResilientQoS; safe to call twice."""
    if kombu_redis.Channel.QoS is not ResilientQoS:
        kombu_redis.Channel.QoS = ResilientQoS
        logger.debug("installed the Redis acknowledgement fix")
