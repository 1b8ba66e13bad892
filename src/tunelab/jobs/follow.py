"""A job's events, from the first, until the job has ended and its last event was seen.

`EventCursor.poll()` is the one step; `follow()` loops it for the CLI and notebooks, `afollow()`
for the server's event stream, which must not hold a thread while it waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

from tunelab.store import EventRecord, Store

POLL_SECONDS = 0.5


class EventCursor:
    def __init__(self, store: Store, job_id: str, after_seq: int = 0):
        self.store = store
        self.job_id = store.get_job(job_id).id  # NotFoundError now, not on the first poll
        self.seq = after_seq
        self.done = False

    def poll(self) -> list[EventRecord]:
        """Events since the last poll. Sets `done` once the job has ended; the events are listed
        again after the status is read, as the worker writes the last ones just before it."""
        events = self.store.list_events(self.job_id, after_seq=self.seq)
        if self.store.get_job(self.job_id).is_terminal:
            events += self.store.list_events(self.job_id, after_seq=events[-1].seq if events else self.seq)
            self.done = True
        if events:
            self.seq = events[-1].seq
        return events


def follow(store: Store, job_id: str, *, poll_s: float = POLL_SECONDS) -> Iterator[EventRecord]:
    cursor = EventCursor(store, job_id)
    while True:
        yield from cursor.poll()
        if cursor.done:
            return
        time.sleep(poll_s)


async def afollow(store: Store, job_id: str, *, poll_s: float = POLL_SECONDS) -> AsyncIterator[EventRecord]:
    cursor = await asyncio.to_thread(EventCursor, store, job_id)
    while True:
        for event in await asyncio.to_thread(cursor.poll):
            yield event
        if cursor.done:
            return
        await asyncio.sleep(poll_s)
