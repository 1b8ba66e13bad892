"""A job's events, from the first, until the job has ended and its last event was seen.

`EventCursor.poll()` is the one step; `follow()` loops it for the CLI and notebooks, `afollow()`
for the server's event stream, which must not hold a thread while it waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

from tunelab.store import EventRecord, Store
from tunelab.store.records import QUEUED, RUNNING
from tunelab.training import worker  # ensure_worker is looked up per call, so tests can replace it

POLL_SECONDS = 0.5
WORKER_CHECK_SECONDS = 15.0
"""How often `follow` makes sure a worker serves a queued or running job (one killed while it is
followed, e.g. kill -9: on a shared store, once its lease has run out)."""


class EventCursor:
    def __init__(self, store: Store, job_id: str, after_seq: int = 0):
        self.store = store
        self.job_id = store.get_job(job_id).id  # NotFoundError now, not on the first poll
        self.seq = after_seq
        self.done = False
        self.status: str | None = None

    def poll(self) -> list[EventRecord]:
        """Events since the last poll. Sets `done` once the job has ended; the events are listed
        again after the status is read, as the worker writes the last ones just before it."""
        events = self.store.list_events(self.job_id, after_seq=self.seq)
        job = self.store.get_job(self.job_id)
        self.status = job.status
        if job.is_terminal:
            events += self.store.list_events(self.job_id, after_seq=events[-1].seq if events else self.seq)
            self.done = True
        if events:
            self.seq = events[-1].seq
        return events


def follow(store: Store, job_id: str, *, poll_s: float = POLL_SECONDS,
           check_worker_s: float = WORKER_CHECK_SECONDS) -> Iterator[EventRecord]:
    """Every `check_worker_s` while the job is queued or running, a background worker is started
    if none runs: the one running it may have been killed while we follow (kill -9), and on a
    shared store the job would otherwise wait, and we with it, until someone starts a worker."""
    cursor = EventCursor(store, job_id)
    checked = time.monotonic()
    while True:
        yield from cursor.poll()
        if cursor.done:
            return
        if cursor.status in (QUEUED, RUNNING) and time.monotonic() - checked >= check_worker_s:
            checked = time.monotonic()
            worker.ensure_worker(store)
        time.sleep(poll_s)


async def afollow(store: Store, job_id: str, *, poll_s: float = POLL_SECONDS) -> AsyncIterator[EventRecord]:
    cursor = await asyncio.to_thread(EventCursor, store, job_id)
    while True:
        for event in await asyncio.to_thread(cursor.poll):
            yield event
        if cursor.done:
            return
        await asyncio.sleep(poll_s)
