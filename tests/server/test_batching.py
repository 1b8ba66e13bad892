"""On-the-fly batching: concurrent requests share one predictor call, each gets its own slice,
one bad request cannot fail the others, and a lone client is not kept waiting."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest

from tests.server.conftest import LABELS, PROMPT, make_client
from tunelab.server.batching import BatcherRegistry, BatchStats, MicroBatcher, ModelPool


class Recorder:
    def __init__(self, delay: float = 0.0):
        self.calls: list[list] = []
        self.delay = delay

    def __call__(self, items: list) -> list:
        self.calls.append(list(items))
        if "bad" in items:
            raise ValueError("bad item")
        time.sleep(self.delay)
        return [f"out:{x}" for x in items]


def test_concurrent_submissions_share_one_call():
    async def main():
        run = Recorder()
        batcher = MicroBatcher(run, window_s=0.05)
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(10)), batcher.submit(["a", "b"]))
        return run, batcher, results

    run, batcher, results = asyncio.run(main())
    assert len(run.calls) == 1 and len(run.calls[0]) == 12
    assert results[:10] == [[f"out:{i}"] for i in range(10)]
    assert results[10] == ["out:a", "out:b"]
    assert batcher.stats.max_prompts == 12 and batcher.stats.requests == 11


def test_batches_respect_max_batch_and_keep_filling_while_busy():
    async def main():
        run = Recorder(delay=0.02)
        batcher = MicroBatcher(run, max_batch=8, window_s=0.01)
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(30)))
        return run, results

    run, results = asyncio.run(main())
    assert all(len(c) <= 8 for c in run.calls)
    assert sum(len(c) for c in run.calls) == 30 and len(run.calls) == 4
    assert results == [[f"out:{i}"] for i in range(30)]


def test_a_failing_request_does_not_fail_the_batch():
    async def main():
        run = Recorder()
        batcher = MicroBatcher(run, window_s=0.05)
        return await asyncio.gather(batcher.submit([1]), batcher.submit(["bad"]), batcher.submit([2]),
                                    return_exceptions=True)

    good1, bad, good2 = asyncio.run(main())
    assert good1 == ["out:1"] and good2 == ["out:2"]
    assert isinstance(bad, ValueError)


def test_lone_sequential_requests_are_not_delayed():
    async def main():
        batcher = MicroBatcher(Recorder(), window_s=5.0, gap_s=5.0)
        started = time.perf_counter()
        for i in range(5):
            assert await batcher.submit([i]) == [f"out:{i}"]
        return time.perf_counter() - started

    assert asyncio.run(main()) < 1.0


def test_pool_loads_once_and_evicts_least_recently_used():
    loads: list[str] = []
    lock = threading.Lock()

    def load(model_id: str):
        with lock:
            loads.append(model_id)
        time.sleep(0.05)
        return object()

    async def main():
        pool = ModelPool(load, max_loaded=2)
        a1, a2 = await asyncio.gather(pool.get("a"), pool.get("a"))
        assert a1 is a2
        await pool.get("b")
        await pool.get("a")  # a is now the most recently used
        await pool.get("c")  # evicts b
        return pool.loaded()

    assert asyncio.run(main()) == ["a", "c"]
    assert loads == ["a", "b", "c"]


def test_failed_load_is_not_cached():
    calls = []

    def load(model_id):
        calls.append(model_id)
        if len(calls) == 1:
            raise RuntimeError("disk hiccup")
        return "model"

    async def main():
        pool = ModelPool(load)
        with pytest.raises(RuntimeError):
            await pool.get("m")
        return await pool.get("m")

    assert asyncio.run(main()) == "model" and calls == ["m", "m"]


def test_server_batches_concurrent_http_requests(store, models, fake_predictors):
    """Through the app: concurrent completion and label-score requests land in shared predictor
    calls (the fake predictor takes 50 ms a call, so that requests pile up as they would under load),
    and each request gets its own answer."""
    from tunelab.server import create_app

    model = models["classifier"]
    fake = fake_predictors.get(model)
    fake.delay = 0.05
    app = create_app(store, loader=fake_predictors.loader)
    oa, http = make_client(app)
    prompts = [PROMPT, "bad awful\n\n###\n\n", "fine okay\n\n###\n\n"]
    with http:
        alone = {p: oa.completions.create(model=model, prompt=p, max_tokens=1, temperature=0, logprobs=5).choices[0]
                 for p in prompts}
        fake.calls.clear()

        def ask(i):
            p = prompts[i % len(prompts)]
            if i % 2:
                data = http.post("/v1/labels/score", json={"model": model, "prompt": p}).json()["data"][0]
                return p, data["label"], data["logprobs"]
            choice = oa.completions.create(model=model, prompt=p, max_tokens=1, temperature=0,
                                           logprobs=1 + i % 5).choices[0]
            return p, choice.text, choice.logprobs.top_logprobs[0]

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(ask, range(48)))
        stats = http.get("/v1/tunelab/stats").json()["batching"][model]
    for i, (p, label, logprobs) in enumerate(answers):
        assert label == alone[p].text
        expected = alone[p].logprobs.top_logprobs[0]
        if i % 2:
            assert logprobs == pytest.approx(dict(zip(LABELS, fake.expected_scores(p))))
        else:  # each request keeps its own top-k of the batch's larger one
            assert list(logprobs) == list(expected)[:1 + i % 5]
            assert logprobs == pytest.approx({k: expected[k] for k in logprobs})
    sizes = [n for _, n in fake.calls]
    assert max(sizes) > 1, fake.calls
    assert stats["max_prompts_per_batch"] > 1 and stats["batches"] < stats["requests"]
    assert sum(sizes) == stats["prompts"] - 3  # every prompt answered once (3 before the burst)


def test_stats_as_dict():
    stats = BatchStats()
    stats.record(3, 5, 0.1)
    stats.record(1, 1, 0.1)
    assert stats.as_dict()["mean_prompts_per_batch"] == 3.0 and stats.as_dict()["max_prompts_per_batch"] == 5


def test_a_full_queue_refuses_at_once():
    from tunelab.errors import OverloadedError

    registry = BatcherRegistry(max_batch=1, window_s=0, gap_s=0, threads=1, max_queue=3)

    def run(items):
        time.sleep(0.2)
        return items

    async def main():
        batcher = registry.batcher("m", "k", run)
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(8)), return_exceptions=True)
        alone = await batcher.submit(list(range(10)))  # an empty queue admits any request, however large
        return results, alone

    results, alone = asyncio.run(main())
    refused = [r for r in results if isinstance(r, OverloadedError)]
    assert len(refused) == 5 and all(r.retry_after >= 1 for r in refused)  # all 8 arrive before the first runs
    assert [r for r in results if not isinstance(r, Exception)] == [[0], [1], [2]] and alone == list(range(10))
    registry.close()


def test_deadlines_end_waits_and_drop_the_request():
    from tunelab.errors import TemporarilyUnavailableError
    from tunelab.server.batching import deadline

    calls = []

    def run(items):
        calls.append(list(items))
        time.sleep(0.3)
        return items

    async def main():
        batcher = MicroBatcher(run, max_batch=1, window_s=0)
        first = asyncio.ensure_future(batcher.submit(["slow"]))
        await asyncio.sleep(0.01)
        with deadline(0.1):
            with pytest.raises(TemporarilyUnavailableError) as excinfo:
                await batcher.submit(["late"])
        assert excinfo.value.code == "timeout"
        await first
        await asyncio.sleep(0.05)

    asyncio.run(main())
    assert calls == [["slow"]]  # the request that gave up was never computed


def test_temporary_failures_are_not_retried_one_by_one():
    from tunelab.errors import TemporarilyUnavailableError

    calls = []

    def run(items):
        calls.append(len(items))
        raise TemporarilyUnavailableError("the model process died twice")

    async def main():
        batcher = MicroBatcher(run, max_batch=8, window_s=0.05, gap_s=0.05)
        return await asyncio.gather(*(batcher.submit([i]) for i in range(4)), return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, TemporarilyUnavailableError) for r in results) and calls == [4]


def test_library_errors_of_a_load_are_remembered_for_a_while():
    from tunelab.errors import NotFoundError

    calls = []

    def load(model_id):
        calls.append(model_id)
        raise NotFoundError(f"The model {model_id!r} does not exist.")

    async def main():
        pool = ModelPool(load, failure_ttl_s=0.2)
        for _ in range(5):
            with pytest.raises(NotFoundError):
                await pool.get("m")
        await asyncio.sleep(0.25)
        with pytest.raises(NotFoundError):
            await pool.get("m")

    asyncio.run(main())
    assert calls == ["m", "m"]


def test_a_load_outlives_the_request_that_gave_up():
    from tunelab.errors import TemporarilyUnavailableError
    from tunelab.server.batching import deadline

    def load(model_id):
        time.sleep(0.3)
        return f"model {model_id}"

    async def main():
        pool = ModelPool(load)
        with deadline(0.05):
            with pytest.raises(TemporarilyUnavailableError, match="loading"):
                await pool.get("m")
        await asyncio.sleep(0.4)
        assert pool.loaded() == ["m"]
        return await pool.get("m")

    assert asyncio.run(main()) == "model m"


def test_several_batches_in_flight_when_the_predictor_runs_them_at_once():
    """max_in_flight=2 (an in-process model with two replicas): two batches run together, the next
    waits for a free slot, and every request still gets its own answer."""
    started, release = [], threading.Event()

    def run(items):
        started.append(list(items))
        release.wait(5)
        return [f"out:{x}" for x in items]

    async def main():
        batcher = MicroBatcher(run, executor=concurrent.futures.ThreadPoolExecutor(4), max_batch=2, window_s=0,
                               max_in_flight=2)
        tasks = [asyncio.create_task(batcher.submit([i])) for i in range(6)]
        await asyncio.sleep(0.3)
        running = [list(b) for b in started]
        release.set()
        return running, await asyncio.gather(*tasks)

    running, results = asyncio.run(main())
    assert running == [[0, 1], [2, 3]]
    assert results == [[f"out:{i}"] for i in range(6)]


def test_streams_count_against_the_queue_bound():
    """Streamed answers generate outside the batchers: uncounted, any number piled up behind the
    model with no 429 whatever --max-queue said."""
    from tunelab.errors import OverloadedError
    from tunelab.server.batching import BatcherRegistry

    registry = BatcherRegistry(max_queue=3)
    first = registry.admit_stream("m", 2)
    second = registry.admit_stream("m", 1)  # 3 prompts, the bound
    with pytest.raises(OverloadedError):
        registry.admit_stream("m", 1)
    registry.admit_stream("other", 3)()  # per model, and released at once
    first()
    first()  # released once only
    third = registry.admit_stream("m", 2)
    second(), third()
    assert registry._streaming == {}
    registry.close()
