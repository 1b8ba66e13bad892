"""On-the-fly batching of concurrent inference requests, and the pool of warm models.

A forward pass over 32 prompts costs little more than one over a single prompt (on a GPU almost
nothing more; on a CPU far less than 32 times as much), so requests that arrive together for the
same model are answered together:

- `MicroBatcher` serves one key: (model, operation, sampling parameters that must be equal within a
  batch). Requests queue up; a loop takes everything queued (up to `max_batch` prompts), runs ONE
  `Predictor.complete` / `Predictor.score_labels` call in a worker thread, and hands each request
  its slice of the result. While a batch runs, the next one fills up.
- Before taking a batch the loop waits for stragglers: until no new request has come for
  `gap_s`, at most `window_s` after the first one, never once the batch is full. A lone client
  sending one request at a time (the previous batch had one request, nothing else queued) is not
  kept waiting at all.
- If a batch fails, its requests are retried one by one, so one bad request cannot fail the others
  (not when the failure is temporary, a TemporarilyUnavailableError: that would fail them all again).
- Admission: at most `max_queue` prompts wait per model (all its batchers together); beyond that a
  request is refused at once with an OverloadedError (429 and Retry-After) instead of waiting
  longer than anyone would. A request alone in an empty queue is always admitted, however large.
- Deadlines: a request that waits (for its model to load, in the queue, for its batch) beyond the
  deadline set with `deadline()` (per request, by the server's middleware) is answered with a
  TemporarilyUnavailableError (503 and Retry-After) and dropped from the queue.
- `ModelPool` keeps at most `max_loaded` predictors loaded, least recently used evicted first;
  concurrent first requests for a model share one load, which runs to its end even when every
  request that waited for it gave up (so the next one finds the model loaded). A load that failed
  with a library error (unknown model, weights not installed, not servable) is remembered for
  `failure_ttl_s` seconds: requests for it are answered from memory instead of each starting a
  process that fails again. Other failures (a crash, a disk hiccup) are tried again. With
  `tunelab serve` on a GPU (or `--model-processes always`) each predictor is a `ProcessPredictor`
  (server/model_process.py): the model runs in its own process; on a CPU it runs in the server
  process, called by the batchers' inference thread (server/inprocess.py).
"""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from tunelab.errors import OverloadedError, TemporarilyUnavailableError, TunelabError

DEFAULT_MAX_BATCH = 32
DEFAULT_WINDOW_S = 0.010
DEFAULT_GAP_S = 0.002
DEFAULT_MAX_QUEUE = 1024
DEFAULT_FAILURE_TTL_S = 30.0

# time.monotonic() by which the current request must be answered; None: no deadline.
_deadline: ContextVar[float | None] = ContextVar("tunelab_request_deadline", default=None)


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Waits inside this block (model loads, queues, batches) end after `seconds` in total."""
    token = _deadline.set(None if seconds is None else time.monotonic() + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def time_left() -> float | None:
    """Seconds until the current request's deadline (None: no deadline)."""
    end = _deadline.get()
    return None if end is None else end - time.monotonic()


def _timed_out(what: str) -> TemporarilyUnavailableError:
    return TemporarilyUnavailableError(
        f"The request timed out {what} (tunelab serve --request-timeout); the server is busier than it can "
        "serve in time. Send it again later.", retry_after=2, code="timeout")


@dataclass
class BatchStats:
    """Counters of one model's batches (the batching test and /v1/tunelab/stats read them)."""

    batches: int = 0
    requests: int = 0
    prompts: int = 0
    max_prompts: int = 0
    busy_seconds: float = 0.0
    recent: deque = field(default_factory=lambda: deque(maxlen=2000))  # prompts per batch
    listener: Callable[[int, int, float], None] | None = field(default=None, repr=False, compare=False)
    """Called with (requests, prompts, seconds) after each batch (the /metrics histograms)."""

    def record(self, n_requests: int, n_prompts: int, seconds: float) -> None:
        if self.listener is not None:
            self.listener(n_requests, n_prompts, seconds)
        self.batches += 1
        self.requests += n_requests
        self.prompts += n_prompts
        self.max_prompts = max(self.max_prompts, n_prompts)
        self.busy_seconds += seconds
        self.recent.append(n_prompts)

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "requests": self.requests, "prompts": self.prompts,
                "mean_prompts_per_batch": round(self.prompts / self.batches, 2) if self.batches else 0.0,
                "max_prompts_per_batch": self.max_prompts, "busy_seconds": round(self.busy_seconds, 3)}


@dataclass
class _Pending:
    items: list
    future: asyncio.Future
    arrived: float


class MicroBatcher:
    """Runs `run(items) -> results` (one result per item, same order) over batches of submissions."""

    def __init__(self, run: Callable[[list], Sequence], *, executor: Executor | None = None,
                 max_batch: int = DEFAULT_MAX_BATCH, window_s: float = DEFAULT_WINDOW_S,
                 gap_s: float = DEFAULT_GAP_S, stats: BatchStats | None = None,
                 on_idle: Callable[[MicroBatcher], None] | None = None, max_in_flight: int = 1):
        self.run = run
        self.max_in_flight = max(1, int(max_in_flight))
        """Batches run at once (each in its own executor thread). More than one only for a predictor
        that runs calls concurrently (server/inprocess.py: one replica per core); the next batch
        fills up while all of them run."""
        self._in_flight: set[asyncio.Task] = set()
        self.executor = executor
        self.max_batch = max(1, int(max_batch))
        self.window_s = max(0.0, float(window_s))
        self.gap_s = max(0.0, float(gap_s))
        self.stats = stats if stats is not None else BatchStats()
        self.on_idle = on_idle
        self.admit: Callable[[int], None] | None = None
        """Called with the number of prompts before they are queued; raises to refuse them."""
        self._queue: deque[_Pending] = deque()
        self._arrival = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._last_requests = 0

    @property
    def queued_prompts(self) -> int:
        return sum(len(p.items) for p in self._queue if not p.future.done())

    async def submit(self, items: list) -> list:
        """The results for `items`, computed together with whatever else is queued."""
        if self.admit is not None:
            self.admit(len(items))
        loop = asyncio.get_running_loop()
        pending = _Pending(list(items), loop.create_future(), loop.time())
        self._queue.append(pending)
        self._arrival.set()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain())
        left = time_left()
        if left is None:
            return await pending.future
        try:
            # On timeout wait_for cancels the future: _take skips it, and a batch that already
            # holds it drops its result.
            return await asyncio.wait_for(pending.future, max(0.0, left))
        except TimeoutError:
            raise _timed_out("waiting for its batch") from None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue or self._in_flight:
                if not self._queue:  # batches still running: wait for one to end or a request to come
                    self._arrival.clear()
                    arrival = loop.create_task(self._arrival.wait())
                    await asyncio.wait({*self._in_flight, arrival}, return_when=asyncio.FIRST_COMPLETED)
                    arrival.cancel()
                    continue
                while len(self._in_flight) >= self.max_in_flight:
                    await asyncio.wait(set(self._in_flight), return_when=asyncio.FIRST_COMPLETED)
                await self._gather(loop)
                batch = self._take()
                if not batch:
                    continue
                if self.max_in_flight == 1:
                    await self._execute(batch, loop)
                else:
                    task = loop.create_task(self._execute(batch, loop))
                    self._in_flight.add(task)
                    task.add_done_callback(self._in_flight.discard)
        except asyncio.CancelledError:  # shutdown: nobody will answer the queued requests
            while self._queue:
                self._queue.popleft().future.cancel()
            raise
        finally:
            self._task = None
            if self._queue:  # cancelled mid-way (shutdown) or a submit raced the exit
                self._task = loop.create_task(self._drain())
            elif self.on_idle is not None:
                self.on_idle(self)

    async def _gather(self, loop) -> None:
        lone = len(self._queue) == 1 and self._last_requests <= 1
        if lone or self.window_s == 0:
            return
        deadline = self._queue[0].arrived + self.window_s
        while self.queued_prompts < self.max_batch:
            now = loop.time()
            last = self._queue[-1].arrived
            wait = min(deadline - now, last + self.gap_s - now) if self.gap_s else deadline - now
            if wait <= 0:
                return
            self._arrival.clear()
            try:
                await asyncio.wait_for(self._arrival.wait(), wait)
            except TimeoutError:
                pass

    def _take(self) -> list[_Pending]:
        batch, size = [], 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # the client went away
                self._queue.popleft()
                continue
            if batch and size + len(head.items) > self.max_batch:
                break
            batch.append(self._queue.popleft())
            size += len(head.items)
        return batch

    async def _execute(self, batch: list[_Pending], loop) -> None:
        flat = [item for p in batch for item in p.items]
        self._last_requests = len(batch)
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self.executor, self._call, flat)
        except Exception as exc:  # noqa: BLE001 - handed to the waiting requests
            if len(batch) == 1 or isinstance(exc, TemporarilyUnavailableError):
                for p in batch:
                    _fail(p.future, exc)
                return
            for p in batch:  # isolate the request that broke the batch
                try:
                    _succeed(p.future, await loop.run_in_executor(self.executor, self._call, p.items))
                except Exception as single:  # noqa: BLE001
                    _fail(p.future, single)
            return
        finally:
            self.stats.record(len(batch), len(flat), time.perf_counter() - started)
        start = 0
        for p in batch:
            _succeed(p.future, list(results[start:start + len(p.items)]))
            start += len(p.items)

    def _call(self, items: list) -> Sequence:
        results = self.run(items)
        if len(results) != len(items):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        return results


def _succeed(future: asyncio.Future, value) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


class ModelPool:
    """Loaded predictors by model id, least recently used evicted beyond `max_loaded`."""

    def __init__(self, load: Callable[[str], Any], max_loaded: int = 2, *,
                 failure_ttl_s: float = DEFAULT_FAILURE_TTL_S):
        self.load = load
        self.max_loaded = max(1, int(max_loaded))
        self.failure_ttl_s = float(failure_ttl_s)
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._loading: dict[str, asyncio.Task] = {}
        self._failures: dict[str, tuple[float, BaseException]] = {}
        self._lock = threading.Lock()

    def loaded(self) -> list[str]:
        return list(self._models)

    def peek(self, model_id: str):
        """The loaded model, without touching the LRU order (None when not loaded)."""
        return self._models.get(model_id)

    async def get(self, model_id: str):
        if model_id in self._models:
            model = self._models[model_id]
            if getattr(model, "alive", True):
                self._models.move_to_end(model_id)
                return model
            self.evict(model_id)  # closed after its process failed: load it again
        failed = self._failures.get(model_id)
        if failed is not None:
            until, exc = failed
            if time.monotonic() < until:
                raise exc.with_traceback(None)
            del self._failures[model_id]
        task = self._loading.get(model_id)
        if task is None:
            task = self._loading[model_id] = asyncio.get_running_loop().create_task(self._load(model_id))
            task.add_done_callback(_retrieve)
        left = time_left()
        try:
            # shield: a request that gives up does not cancel the load the others (and the next
            # request) wait for.
            return await asyncio.wait_for(asyncio.shield(task), None if left is None else max(0.0, left))
        except TimeoutError:
            raise _timed_out(f"while {model_id} was loading") from None

    async def _load(self, model_id: str):
        try:
            predictor = await asyncio.to_thread(self.load, model_id)
        except Exception as exc:
            # Only what the library says will fail again (unknown model, weights not installed,
            # not servable) is remembered; anything else may be a hiccup worth a new try.
            permanent = isinstance(exc, TunelabError) and not isinstance(exc, TemporarilyUnavailableError)
            if permanent and self.failure_ttl_s > 0:
                self._failures[model_id] = (time.monotonic() + self.failure_ttl_s, exc)
            raise
        finally:
            self._loading.pop(model_id, None)
        self._models[model_id] = predictor
        self._models.move_to_end(model_id)
        while len(self._models) > self.max_loaded:
            _, old = self._models.popitem(last=False)
            _release(old)
        return predictor

    def forget_failure(self, model_id: str) -> None:
        """Let the next request try to load `model_id` again (e.g. after its weights were installed)."""
        self._failures.pop(model_id, None)

    def evict(self, model_id: str) -> bool:
        model = self._models.pop(model_id, None)
        if model is None:
            return False
        _release(model)
        return True

    def clear(self) -> None:
        models = list(self._models.values())
        self._models.clear()
        for model in models:
            if hasattr(model, "close"):
                model.close()
        # A full collection costs ~0.15 s with torch loaded: only worth it when this process held a model.
        if any(not hasattr(model, "close_in_background") for model in models):
            _release(None)


def _retrieve(task: asyncio.Task) -> None:
    """Mark a load's outcome as seen, so that a failure nobody waited for logs no warning."""
    if not task.cancelled():
        task.exception()


def _release(model) -> None:
    """Unload a model: stop its process (after its current call), or free its memory here."""
    if model is not None and hasattr(model, "close_in_background"):
        model.close_in_background()
        return
    gc.collect()
    try:
        import torch

        if torch.cuda.is_initialized():  # never create a CUDA context in the server just to empty it
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001 - freeing memory is best effort
        pass


class BatcherRegistry:
    """One MicroBatcher per key, created on demand and dropped when idle; stats kept per model."""

    def __init__(self, *, max_batch: int = DEFAULT_MAX_BATCH, window_s: float = DEFAULT_WINDOW_S,
                 gap_s: float = DEFAULT_GAP_S, threads: int = 4, max_queue: int | None = DEFAULT_MAX_QUEUE,
                 on_batch: Callable[[str, int, int, float], None] | None = None, max_in_flight: int = 1):
        self.on_batch = on_batch  # (model, requests, prompts, seconds) after each batch
        self.max_in_flight = max_in_flight  # batches per key at once (MicroBatcher.max_in_flight)
        self.max_queue = max_queue  # prompts waiting per model; None: unbounded
        self.max_batch = max_batch
        self.window_s = window_s
        self.gap_s = gap_s
        self.executor = ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="tunelab-infer")
        self._batchers: dict[Hashable, MicroBatcher] = {}
        self.stats: dict[str, BatchStats] = {}
        self._streaming: dict[str, int] = {}  # prompts being streamed per model (see admit_stream)

    def batcher(self, model_id: str, key: Hashable, run: Callable[[list], Sequence]) -> MicroBatcher:
        full_key = (model_id, key)
        batcher = self._batchers.get(full_key)
        if batcher is None:
            stats = self.stats.get(model_id)
            if stats is None:
                on_batch = self.on_batch
                listener = (None if on_batch is None else
                            lambda n_requests, n_prompts, seconds, model=model_id:
                            on_batch(model, n_requests, n_prompts, seconds))
                stats = self.stats[model_id] = BatchStats(listener=listener)

            def drop(b: MicroBatcher, k=full_key) -> None:
                if self._batchers.get(k) is b and not b._queue:
                    del self._batchers[k]

            batcher = MicroBatcher(run, executor=self.executor, max_batch=self.max_batch, window_s=self.window_s,
                                   gap_s=self.gap_s, stats=stats, on_idle=drop, max_in_flight=self.max_in_flight)
            if self.max_queue is not None:
                batcher.admit = lambda n, model=model_id: self._admit(model, n)
            self._batchers[full_key] = batcher
        return batcher

    def admit_stream(self, model_id: str, n: int) -> Callable[[], None]:
        """Admit a streamed answer of `n` prompts (choices) or raise OverloadedError; returns the
        call that releases it (idempotent). Streams generate token by token in threads of their own,
        outside the batchers: uncounted, any number of them piled up behind the model with no 429,
        whatever --max-queue said. They count with the prompts waiting."""
        if self.max_queue is not None:
            self._admit(model_id, n)
        self._streaming[model_id] = self._streaming.get(model_id, 0) + n
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                left = self._streaming.get(model_id, 0) - n
                if left > 0:
                    self._streaming[model_id] = left
                else:
                    self._streaming.pop(model_id, None)

        return release

    def _admit(self, model_id: str, n: int) -> None:
        waiting = sum(b.queued_prompts for (m, _), b in list(self._batchers.items()) if m == model_id)
        waiting += self._streaming.get(model_id, 0)
        if waiting and waiting + n > self.max_queue:
            stats = self.stats.get(model_id)
            per_prompt = stats.busy_seconds / stats.prompts if stats and stats.prompts else 0.05
            retry = min(60, max(1, math.ceil(waiting * per_prompt)))
            raise OverloadedError(
                f"{model_id} has {waiting} prompts waiting, the most this server queues per model is "
                f"{self.max_queue} (tunelab serve --max-queue). Send the request again in {retry} s.",
                retry_after=retry)

    def queued_prompts(self) -> dict[str, int]:
        """Prompts waiting for a forward pass, per model (the /metrics queue depth). A model that
        has been served reports 0 while its batchers are dropped for being idle: a gauge series that
        vanishes reads as "no data" in Grafana, and breaks alerts on absent() or on rate windows."""
        out: dict[str, int] = dict.fromkeys(self.stats, 0)
        for (model_id, _), batcher in list(self._batchers.items()):
            out[model_id] = out.get(model_id, 0) + batcher.queued_prompts
        return out

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
