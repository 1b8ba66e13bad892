"""Load test of `tunelab serve` with the official `openai` client: N requests at C-way concurrency,
then requests/s, p50/p99 latency, the non-2xx answers by status and the answers lost (a connection
error or a client timeout: no answer at all). A server that holds answers every request, with a
2xx or an error in the envelope.

    python benchmarks/load.py                                  # starts a server on a small BERT it fine-tunes
    python benchmarks/load.py --model ada:ft-... -n 5000 -c 64 # a model in $TUNELAB_HOME
    python benchmarks/load.py --url http://127.0.0.1:8000/v1 --model ada:ft-...   # a running server
    python benchmarks/load.py --kill-model-after 300           # kill -9 the model's process mid-run
    python benchmarks/load.py --serve-arg=--max-queue --serve-arg=8   # overload: expect 429s, no lost answers

Each request is the book's call (max_tokens=1, temperature=0, logprobs=5) on a prompt of 24-48
words. The client does not retry (max_retries=0, `--retries` to change), so every 429 and 503 the
server sends is counted. Exit status 1 when an answer was lost.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_throughput import Server, _quantile, fine_tune, machine, sentence  # noqa: E402


def run_load(client, model: str, prompts: list[str], n: int, concurrency: int, *, endpoint: str = "completions",
             on_answer=None) -> dict:
    """Send n requests, `concurrency` at a time; returns the counts and latencies."""
    import openai

    statuses: collections.Counter = collections.Counter()
    lost: collections.Counter = collections.Counter()
    latencies: list[float] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        prompt = prompts[i % len(prompts)]
        t0 = time.perf_counter()
        status, kind = None, None
        try:
            if endpoint == "chat":
                client.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                               max_tokens=1, temperature=0)
            else:
                client.completions.create(model=model, prompt=prompt, max_tokens=1, temperature=0, logprobs=5)
            status = 200
        except openai.APIStatusError as exc:
            status = exc.status_code
        except openai.APIError as exc:  # no answer: connection refused or reset, or our timeout
            kind = type(exc).__name__
        elapsed = time.perf_counter() - t0
        with lock:
            if status is None:
                lost[kind] += 1
            else:
                statuses[status] += 1
                latencies.append(elapsed)
            done = sum(statuses.values()) + sum(lost.values())
        if on_answer is not None:
            on_answer(done)

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(n)))
    seconds = time.perf_counter() - started
    ok = sum(c for s, c in statuses.items() if 200 <= s < 300)
    return {"requests": n, "concurrency": concurrency, "seconds": seconds, "rps": n / seconds,
            "ok": ok, "non_2xx": {str(s): c for s, c in sorted(statuses.items()) if not 200 <= s < 300},
            "lost": sum(lost.values()), "lost_kinds": dict(lost),
            "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
            "p99_ms": 1000 * _quantile(latencies, 0.99) if latencies else None}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="base URL of a running server (…/v1); default: start one")
    parser.add_argument("--model", help="model id (default: build and fine-tune a small BERT; needs no --url)")
    parser.add_argument("-n", "--requests", type=int, default=1000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--endpoint", choices=["completions", "chat"], default="completions")
    parser.add_argument("--api-key", default=os.environ.get("TUNELAB_API_KEY") or "bench")
    parser.add_argument("--timeout", type=float, default=120.0, help="client timeout per request, seconds")
    parser.add_argument("--retries", type=int, default=0, help="the openai client's max_retries (default 0)")
    parser.add_argument("--warmup", type=int, default=64, help="requests sent first, not measured (default 64)")
    parser.add_argument("--kill-model-after", type=int, metavar="K",
                        help="kill -9 the model's process once K answers came (a server on this machine)")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for the `tunelab serve` this script starts (repeatable)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import httpx
    import openai

    tmp, server = None, None
    if args.url:
        if not args.model:
            parser.error("--url needs --model")
        base_url, model = args.url.rstrip("/"), args.model
    else:
        if args.model:
            home = Path(os.environ.get("TUNELAB_HOME") or Path.home() / ".tunelab")
            model = args.model
        else:
            tmp = tempfile.TemporaryDirectory(prefix="tunelab-load-")
            work = Path(tmp.name)
            home = work / "home"
            os.environ["TUNELAB_HOME"] = str(home)
            print(f"Fine-tuning a small BERT classifier (hidden {args.hidden}, {args.layers} layers)...", flush=True)
            model = fine_tune(work, args.hidden, args.layers)
        extra = list(args.serve_arg)
        if args.kill_model_after and "--model-processes" not in extra:
            extra += ["--model-processes", "always"]  # a model process to kill (a CPU serves in-process)
        server = Server(home, *extra)
        server.wait()
        base_url = server.url + "/v1"
    print(f"Model: {model}\nServer: {base_url}", flush=True)

    client = openai.OpenAI(base_url=base_url, api_key=args.api_key, max_retries=args.retries, timeout=args.timeout,
                           http_client=httpx.Client(limits=httpx.Limits(max_connections=args.concurrency + 8)))
    rng = random.Random(1)
    prompts = [sentence(rng) for _ in range(256)]
    killed: dict = {}

    def stats() -> dict:
        return httpx.get(base_url + "/tunelab/stats", headers={"Authorization": f"Bearer {args.api_key}"}).json()

    kill_lock = threading.Lock()

    def maybe_kill(done: int) -> None:
        if done < args.kill_model_after:
            return
        with kill_lock:  # once: every worker thread calls this
            if not killed:
                killed["pid"] = stats()["model_pids"][model]
                killed["after"] = done
                os.kill(killed["pid"], signal.SIGKILL)

    try:
        if args.warmup:
            run_load(client, model, prompts, args.warmup, min(args.concurrency, args.warmup), endpoint=args.endpoint)
        result = run_load(client, model, prompts, args.requests, args.concurrency, endpoint=args.endpoint,
                          on_answer=maybe_kill if args.kill_model_after else None)
        if killed:
            killed["new_pid"] = stats()["model_pids"].get(model)
            after = run_load(client, model, prompts, min(200, args.requests), args.concurrency, endpoint=args.endpoint)
            killed["next_200_ok"] = after["ok"]
            result["kill"] = killed
    finally:
        if server is not None:
            server.stop()
        if tmp is not None:
            tmp.cleanup()

    print(f"\nMachine: {machine()}")
    print(f"{args.requests} requests at {args.concurrency}-way concurrency ({args.endpoint}, openai client, "
          f"max_retries={args.retries})")
    print(f"  requests/s     {result['rps']:.1f}  ({result['seconds']:.1f} s)")
    print(f"  latency        p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms")
    print(f"  2xx            {result['ok']}")
    print(f"  non-2xx        {sum(result['non_2xx'].values())}"
          + (f"  {result['non_2xx']}" if result["non_2xx"] else ""))
    print(f"  lost answers   {result['lost']}" + (f"  {result['lost_kinds']}" if result["lost"] else ""))
    if killed:
        print(f"  model process {killed['pid']} killed (-9) after {killed['after']} answers; now pid "
              f"{killed['new_pid']}; the next 200 requests: {killed['next_200_ok']} 2xx")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "model": model, **result}, indent=2))
    return 1 if result["lost"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
