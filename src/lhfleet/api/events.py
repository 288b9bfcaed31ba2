"""Live progress for Server-Sent Events: one reader per job, any number of listeners.

A single task reads each watched job from the job store every
``interval`` seconds, in a worker thread, and wakes the listeners whose
job changed. Two hundred browsers watching one job cost one read per
interval, not two hundred.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread

from lhfleet.errors import LhfleetError
from lhfleet.models import Job, JobState
from lhfleet.results import job_document

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
RECONNECT_MS = 3000


@dataclass
class _Channel:
    """The latest state of one job and the listeners waiting for a change."""

    listeners: int = 0
    version: int = 0
    document: dict[str, Any] | None = None
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class ProgressHub:
    """Reads watched jobs on a timer and hands each change to their listeners."""

    def __init__(self, read_job: Callable[[str], Job], interval: float = 0.5) -> None:
        self.read_job = read_job
        self.interval = interval
        self._channels: dict[str, _Channel] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def listeners(self) -> int:
        return sum(channel.listeners for channel in self._channels.values())

    async def watch(self, job_id: str) -> AsyncIterator[dict[str, Any] | None]:
        """Yield the job's document on each change, and None as a heartbeat.

        Ends after yielding the document of the completed job.
        """
        channel = self._channels.setdefault(job_id, _Channel())
        channel.listeners += 1
        self._ensure_task()
        seen = 0
        try:
            while True:
                document = await self._next(channel, seen)
                if document is None:
                    yield None
                    continue
                seen = channel.version
                yield document
                if document["state"] == JobState.COMPLETED.value:
                    return
        finally:
            channel.listeners -= 1
            if channel.listeners == 0:
                self._channels.pop(job_id, None)

    async def _next(self, channel: _Channel, seen: int) -> dict[str, Any] | None:
        async with channel.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    channel.changed.wait_for(lambda: channel.version > seen),
                    HEARTBEAT_SECONDS,
                )
            if channel.version > seen:
                return channel.document
        return None

    def _ensure_task(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll(self) -> None:
        while self._channels:
            job_ids = list(self._channels)
            documents = await anyio.to_thread.run_sync(self._read_all, job_ids)
            for job_id, document in documents.items():
                await self._publish(job_id, document)
            await asyncio.sleep(self.interval)

    def _read_all(self, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        documents = {}
        for job_id in job_ids:
            try:
                documents[job_id] = job_document(self.read_job(job_id))
            except LhfleetError as error:
                logger.warning("job %s: reading its progress failed: %s", job_id, error)
        return documents

    async def _publish(self, job_id: str, document: dict[str, Any]) -> None:
        channel = self._channels.get(job_id)
        if channel is None or channel.document == document:
            return
        async with channel.changed:
            channel.document = document
            channel.version += 1
            channel.changed.notify_all()


def sse_message(event: str, data: dict[str, Any], event_id: int | None = None) -> str:
    """Return one Server-Sent Events message: the event name, an id and JSON data."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")
    return "\n".join(lines) + "\n\n"


async def progress_stream(hub: ProgressHub, job_id: str) -> AsyncGenerator[str]:
    """Yield the SSE text of a job's progress until it completes.

    Each change is a ``progress`` event; the last one is an ``end`` event
    with the completed job. Comments keep idle connections open.
    """
    yield f"retry: {RECONNECT_MS}\n\n"
    number = 0
    async for document in hub.watch(job_id):
        if document is None:
            yield ": keep-alive\n\n"
            continue
        number += 1
        done = document["state"] == JobState.COMPLETED.value
        yield sse_message("end" if done else "progress", document, number)
