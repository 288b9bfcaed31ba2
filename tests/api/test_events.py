"""Progress as Server-Sent Events: the hub, the stream over real HTTP, its end."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from lhfleet.api import events
from lhfleet.api.events import ProgressHub, progress_stream, sse_message
from lhfleet.api.schemas import JobRequest
from lhfleet.client import LhfleetClient, parse_events
from lhfleet.models import Job
from tests.api.conftest import LiveServer, Server

JOB = {"urls": ["http://127.0.0.1:9/a"], "runs": 3, "settings": {}}


def counting(read: Callable[[str], Job]) -> tuple[Callable[[str], Job], list[str]]:
    """Wrap a job reader so the test can count the store reads."""
    reads: list[str] = []

    def wrapped(job_id: str) -> Job:
        reads.append(job_id)
        return read(job_id)

    return wrapped, reads


def test_sse_message_format() -> None:
    text = sse_message("progress", {"a": 1}, 7)
    assert text == 'event: progress\nid: 7\ndata: {"a":1}\n\n'


def test_parse_events_reads_stream() -> None:
    lines = ["retry: 3000", "", ": keep-alive", "", "event: end", 'data: {"b":2}', ""]
    assert list(parse_events(lines)) == [("end", {"b": 2})]


def test_stream_follows_job_to_end(live: LiveServer) -> None:
    server = live.server
    with LhfleetClient(live.url, server.user) as client:
        job_id = client.submit(JOB)["id"]
        received: list[tuple[str, dict[str, Any]]] = []

        def listen() -> None:
            received.extend(client.events(job_id))

        listener = threading.Thread(target=listen)
        listener.start()
        for _ in range(3):
            time.sleep(0.8)
            server.settle(job_id)
        listener.join(timeout=20)
    names = [name for name, _ in received]
    settled = [doc["counts"]["succeeded"] for _, doc in received]
    assert names[-1] == "end"
    assert set(names[:-1]) == {"progress"}
    assert settled == sorted(settled)
    assert settled[-1] == 3
    assert len(received) >= 3


def test_completed_job_ends_at_once(live: LiveServer) -> None:
    server = live.server
    with LhfleetClient(live.url, server.user) as client:
        job_id = client.submit(JOB)["id"]
        server.settle_all(job_id)
        received = list(client.events(job_id))
    assert [name for name, _ in received] == ["end"]


def test_hub_reads_once_for_many(server: Server) -> None:
    job_id = server.state.submitter.submit(
        server.state.tokens.get_token("user"), _request()
    ).id
    read, reads = counting(server.workspace.store.get_job)
    hub = ProgressHub(read, interval=0.1)

    async def watch_all() -> list[list[dict[str, Any] | None]]:
        async def one() -> list[dict[str, Any] | None]:
            return [document async for document in hub.watch(job_id)]

        tasks = [asyncio.create_task(one()) for _ in range(50)]
        await asyncio.sleep(0.5)
        await asyncio.to_thread(server.settle_all, job_id)
        return await asyncio.gather(*tasks)

    seen = asyncio.run(watch_all())
    assert all(documents[-1] is not None for documents in seen)
    assert all(docs[-1]["state"] == "completed" for docs in seen if docs[-1])
    assert len(reads) < 30
    assert hub.listeners == 0


def test_stream_sends_heartbeat(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.2)
    job_id = server.state.submitter.submit(
        server.state.tokens.get_token("user"), _request()
    ).id
    hub = ProgressHub(server.workspace.store.get_job, interval=0.05)

    async def first_three() -> list[str]:
        stream = progress_stream(hub, job_id)
        texts = [await anext(stream) for _ in range(3)]
        await stream.aclose()
        return texts

    texts = asyncio.run(first_three())
    assert texts[0] == "retry: 3000\n\n"
    assert texts[1].startswith("event: progress")
    assert texts[2] == ": keep-alive\n\n"


def _request() -> JobRequest:
    return JobRequest.model_validate(JOB)
