"""moto's server on loopback with one request at a time, for tests and benchmarks.

Why one request at a time: moto 5.2.5 does not lock its backends, and its
threaded server runs each request on a thread of its own. There two
concurrent conditional writes to one item can both succeed, and an ADD can
overwrite another. ``bench/emulator_race.py`` shows it with the engine's
settling transaction: with 8 threads per run, moto's own server settled
some of 60 runs twice and lost counter increments, and this server
settled each once. Real DynamoDB applies each conditional write and each
transaction atomically, so running moto's application under one lock
models that guarantee and adds none that DynamoDB lacks. The lock covers
one request, not a caller's sequence of requests. Requests of different
workers still interleave, so a race between a read and a later write in
the engine still shows (``test_concurrent_duplicates_settle_once``).

What moto does not reproduce either way, so the tests cover it otherwise:
DynamoDB rejects a write to an item that an unfinished transaction
includes (``TransactionConflictException``, or a cancelled transaction
with the reason ``TransactionConflict``), and ``test_store`` injects that
response. moto never throttles, and its standard queues never deliver a
message twice on their own; the tests send duplicates on purpose.

NOTE: moto 5.2.5 restores a table from a deep copy when a transaction is
cancelled, and shard iterators taken before then see none of the table's
later stream records. A test or benchmark that cancels a transaction
must not rely on an existing stream iterator afterwards.

Requests that wait on the server side, such as SQS long polling, would
hold the lock, so callers must not use WaitTimeSeconds here.

It also gives moto's SQS a cheaper clock (see ``speed_up_sqs_clock``).

Needs moto's server (the ``dev`` extra). Run it in its own process with

    python -m lhfleet.aws.emulator --port 5000
"""

from __future__ import annotations

import argparse
import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from moto.core.utils import unix_time as _moto_unix_time
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.sqs import models as moto_sqs
from werkzeug.serving import BaseWSGIServer, make_server

logger = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _unix_time(dt: datetime.datetime | None = None) -> float:
    return time.time() if dt is None else _moto_unix_time(dt)


def _unix_time_millis(dt: datetime.datetime | None = None) -> float:
    return _unix_time(dt) * 1000.0


def speed_up_sqs_clock() -> None:
    """Give moto's SQS the current time from ``time.time()``.

    moto 5.2.5 computes the current Unix time as a naive UTC datetime minus
    the epoch, which is the value ``time.time()`` returns, to the
    microsecond. Times of given datetimes still go through moto's own
    function. So visibility timeouts, delays and retention behave exactly
    as in moto, and concurrency is not affected. Only the cost changes:
    4.4 us a call against 0.07 us (``python -m timeit`` on the 2-core
    development machine). moto's SQS calls it twice for every message in
    the queue whenever it lists the visible ones, as each ReceiveMessage
    does, so with a thousand messages in flight it dominated each call.
    """
    setattr(moto_sqs, "unix_time", _unix_time)  # noqa: B010 - not exported
    setattr(moto_sqs, "unix_time_millis", _unix_time_millis)  # noqa: B010


def serialized(app: WsgiApp) -> WsgiApp:
    """Return a WSGI application that runs ``app`` for one request at a time."""
    lock = threading.Lock()

    def serial_app(
        environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        with lock:
            return list(app(environ, start_response))

    return serial_app


class SerialMotoServer:
    """moto's application behind one lock, served from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        """Start serving; return the endpoint URL."""
        speed_up_sqs_clock()
        app = serialized(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(
            self.host, self.port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-server", daemon=True
        )
        self._thread.start()
        port = self._server.server_address[1]
        logger.info("moto server listening on %s:%s", self.host, port)
        return f"http://{self.host}:{port}"

    def wait(self) -> None:
        """Block until the server stops."""
        if self._thread is not None:
            self._thread.join()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve moto one request at a time.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    arguments = parser.parse_args()
    server = SerialMotoServer(arguments.host, arguments.port)
    print(server.start(), flush=True)
    server.wait()


if __name__ == "__main__":
    main()
