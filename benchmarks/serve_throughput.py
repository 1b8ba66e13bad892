"""Throughput of `tunelab serve` with on-the-fly batching: 32 concurrent clients against one client
at a time, same model, same machine, same request (the book's call: max_tokens=1, temperature=0,
logprobs=5 on a fine-tuned classifier).

    python benchmarks/serve_throughput.py                      # builds and fine-tunes a small BERT
    python benchmarks/serve_throughput.py --model ada:ft-...   # an existing fine-tuned model
    python benchmarks/serve_throughput.py --seconds 20 --concurrency 64
    python benchmarks/serve_throughput.py --log-rounds 0         # skip the prediction-log comparison
    python benchmarks/serve_throughput.py --peer naive --log-rounds 0 --requests 600
                                       # against a hand-written FastAPI + transformers pipeline server

Without --model it works in a temporary TUNELAB_HOME: it builds a random-weight BERT classifier
(hidden 256, 4 layers, so that the forward pass and not HTTP dominates), fine-tunes it for one
epoch with a real job, and serves that. With --model it uses $TUNELAB_HOME as it is. The server is
a real `python -m tunelab serve` subprocess on a free loopback port; the clients are asyncio
coroutines in this process, each on its own keep-alive HTTP/1.1 connection (a minimal client, so
that the load generator costs far less than the server). Both phases follow a warm-up. Prints
requests/s for both phases, their ratio, p50/p99 latency, the server's forward passes, and the
machine.

The cost of the prediction log (issue 12), in the same run: a second server on the same store runs
with `--no-log`; both are warm, and 32-client phases alternate between them (on, off, off, on, ...)
for --log-rounds rounds, so drifts of a shared machine hit both alike. Prints the median req/s
with the log on and off and the overhead (target <= 5 %), and checks that the logged server wrote
one row per request it answered.

The peer (--peer naive): benchmarks/naive_server.py, the server a user writes with FastAPI and a
transformers `pipeline("text-classification", top_k=None)` (one forward pass per request), serving
the same fine-tuned model folder. It gets the same warm-up, prompts, load generator and phases
(1 client, then --concurrency clients; --requests bounds each phase), right after tunelab's, and
the table shows each server's req/s and latency and tunelab's ratios to it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORDS = ("great good bad awful terrible love hate fine okay dress shirt fits small large perfect poor quality fabric "
         "color would buy again return never always the a it is was not very soft comfortable cheap lovely ugly "
         "tight loose long short summer winter size colour").split()
LABELS = ("1", "2", "3", "4", "5")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sentence(rng: random.Random, n_min: int = 24, n_max: int = 48) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(n_min, n_max))) + "\n\n###\n\n"


def build_base(folder: Path, hidden: int, layers: int) -> Path:
    """A random-weight BERT with a word-level tokenizer over WORDS (no download needed)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    raw = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    raw.train_from_iterator([" ".join(WORDS), "1 2 3 4 5 0 6 7 8 9 # ###"],
                            trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    raw.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                  sep_token="[SEP]")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=raw.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden,
                        max_position_embeddings=512, pad_token_id=0)
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def fine_tune(work: Path, hidden: int, layers: int) -> str:
    """One epoch of a real job on the small base; returns the fine-tuned model id."""
    from tunelab.store import Store
    from tunelab.training.planning import JobRequest, create_job
    from tunelab.training.runner import run_job

    base = build_base(work / "base", hidden, layers)
    rng = random.Random(0)
    train = work / "train.jsonl"
    with open(train, "w") as fh:
        for i in range(200):
            fh.write(json.dumps({"prompt": sentence(rng, 8, 24), "completion": " " + LABELS[i % 5]}) + "\n")
    store = Store()
    # pooling=cls: Hugging Face's own classifier head, so that the peer's `pipeline` loads the same folder.
    job, _ = create_job(store, JobRequest(str(train), str(base), hyperparameters={"n_epochs": 1, "pooling": "cls"}))
    job = run_job(store, store.claim_next_job(os.getpid()))
    if job.status != "succeeded":
        raise SystemExit(f"fine-tuning failed: {job.error}")
    return job.fine_tuned_model


class Server:
    def __init__(self, home: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, TUNELAB_HOME=str(home),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
        env.pop("TUNELAB_API_KEY", None)
        self.proc = subprocess.Popen([sys.executable, "-m", "tunelab", "serve", "--port", str(self.port),
                                      "--log-level", "warning", *extra], env=env)

    def wait(self, timeout: float = 120.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("tunelab serve exited")
            try:
                httpx.get(self.url + "/v1/models", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise SystemExit("tunelab serve did not start")

    def batching(self, model: str) -> dict:
        import httpx

        return httpx.get(self.url + "/v1/tunelab/stats").json()["batching"].get(model, {})

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class NaiveServer(Server):
    """benchmarks/naive_server.py on the model's folder (see the module docstring)."""

    def __init__(self, folder: Path, device: str, handler: str, threads: int | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "naive_server.py"), str(folder),
                                      "--port", str(self.port), "--device", device, "--handler", handler,
                                      *(["--threads", str(threads)] if threads else [])], env=env)

    def batching(self, model: str) -> dict:
        return {}


class Connection:
    """A minimal keep-alive HTTP/1.1 client on one socket: the load generator must cost far less
    than the server it measures (httpx's async pool does not, with 32 concurrent requests)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, path: str, payload: dict) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        body = json.dumps(payload).encode()
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                          f"Content-Type: application/json\r\nAuthorization: Bearer bench\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection" and value.strip().lower() == "close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def phase(url: str, model: str, prompts: list[str], concurrency: int, seconds: float, max_requests: int):
    """`concurrency` clients, each sending its next request as soon as the previous one is answered."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    counter = iter(range(max_requests))

    async def client(worker: int) -> None:
        nonlocal errors
        conn = Connection(host, int(port))
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                body = {"model": model, "prompt": prompts[(i * 7 + worker) % len(prompts)], "max_tokens": 1,
                        "temperature": 0, "logprobs": 5}
                t0 = time.perf_counter()
                status, data = await conn.post("/v1/completions", body)
                latencies.append(time.perf_counter() - t0)
                if status != 200 or b'"top_logprobs"' not in data:
                    errors += 1
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {"requests": len(latencies), "errors": errors, "seconds": elapsed, "rps": len(latencies) / elapsed,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * _quantile(latencies, 0.99)}


def _delta(before: dict, after: dict) -> dict:
    """The server's batching counters over one phase: forward passes, prompts per pass, time per pass."""
    keys = ("batches", "requests", "prompts", "busy_seconds")
    d = {k: after.get(k, 0) - before.get(k, 0) for k in keys}
    d["prompts_per_pass"] = d["prompts"] / d["batches"] if d["batches"] else 0.0
    d["ms_per_pass"] = 1000 * d["busy_seconds"] / d["batches"] if d["batches"] else 0.0
    return d


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def machine() -> str:
    import torch

    from tunelab.runtime import device

    dev = device()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if dev.type == "cuda" else ""
    return (f"{platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), device {dev}{gpu}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="an existing fine-tuned model id in $TUNELAB_HOME (default: build one)")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase (default 10)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of warm-up before measuring (default 5)")
    parser.add_argument("--max-requests", type=int, default=50000, help="upper bound per phase")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--log-rounds", type=int, default=4,
                        help="rounds of the prediction log on/off comparison (default 4; 0 skips it)")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--peer", choices=["naive"], help="also measure a peer server on the same model: naive, "
                        "FastAPI + a transformers pipeline (benchmarks/naive_server.py)")
    parser.add_argument("--peer-handler", choices=["sync", "async"], default="sync",
                        help="the naive server's route: a plain def (FastAPI's thread pool) or async def")
    parser.add_argument("--peer-threads", type=int, default=None,
                        help="torch threads of the naive server (default: torch's own, one per core)")
    parser.add_argument("--requests", type=int, default=None,
                        help="requests per measured phase (each phase ends at --requests or --seconds; with "
                             "--peer the default is 600 and --seconds 120)")
    parser.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                        help="an extra argument of `tunelab serve` (repeatable), e.g. --serve-arg=--model-processes "
                             "--serve-arg=always")
    args = parser.parse_args()
    if args.peer and args.requests is None:
        args.requests = 600
        if args.seconds == 10.0:
            args.seconds = 120.0
    if args.requests:
        args.max_requests = args.requests
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    tmp = None
    if args.model:
        home = Path(os.environ.get("TUNELAB_HOME") or Path.home() / ".tunelab")
        model = args.model
    else:
        tmp = tempfile.TemporaryDirectory(prefix="tunelab-bench-")
        work = Path(tmp.name)
        home = work / "home"
        os.environ["TUNELAB_HOME"] = str(home)
        print(f"Building a BERT classifier (hidden {args.hidden}, {args.layers} layers) and fine-tuning it "
              "for one epoch...", flush=True)
        model = fine_tune(work, args.hidden, args.layers)
    print(f"Model: {model}", flush=True)

    server = Server(home, *args.serve_arg)
    unlogged = Server(home, "--no-log", *args.serve_arg) if args.log_rounds > 0 else None
    peer_result = None
    logging_result = None
    try:
        server.wait()
        if unlogged is not None:
            unlogged.wait()
        rng = random.Random(1)
        prompts = [sentence(rng) for _ in range(256)]
        # Warm up: load the model, and let the device see the batch shapes both phases will use
        # (on a GPU the first pass at a new (batch, length) shape is many times slower).
        asyncio.run(phase(server.url, model, prompts, args.concurrency, args.warmup, args.max_requests))
        asyncio.run(phase(server.url, model, prompts, 1, min(2.0, args.warmup), args.max_requests))
        before = server.batching(model)
        sequential = timed_phase(server, model, prompts, 1, args)
        middle = server.batching(model)
        concurrent = timed_phase(server, model, prompts, args.concurrency, args)
        after = server.batching(model)
        sequential["server"] = _delta(before, middle)
        concurrent["server"] = _delta(middle, after)
        if unlogged is not None:
            logging_result = compare_logging(server, unlogged, model, prompts, args)
            logging_result["requests_answered"] = server.batching(model).get("requests", 0)
        if args.peer:
            server.stop()  # the peer gets the machine to itself, as tunelab had
            if unlogged is not None:
                unlogged.stop()
            peer_result = measure_peer(home, model, prompts, args)
    finally:
        server.stop()
        if unlogged is not None:
            unlogged.stop()
        if logging_result is not None:
            logging_result["rows_logged"] = count_rows(home, model)
        if tmp is not None:
            tmp.cleanup()

    ratio = concurrent["rps"] / sequential["rps"]
    print(f"\nMachine: {machine()}; load average at the end (1/5/15 min): "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}; tunelab serve {' '.join(args.serve_arg)}")
    print("Request: POST /v1/completions max_tokens=1 temperature=0 logprobs=5, prompts of 24-48 words\n")
    print(f"{'':<22}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'passes':>8}{'prompts/pass':>14}{'ms/pass':>9}")
    for name, r in (("1 client at a time", sequential), (f"{args.concurrency} concurrent", concurrent)):
        b = r["server"]
        print(f"{name:<22}{r['requests']:>9}{r['rps']:>9.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8}"
              f"{b['batches']:>8}{b['prompts_per_pass']:>14.1f}{b['ms_per_pass']:>9.1f}")
    print(f"\nThroughput ratio: {ratio:.1f}x (target >= 5x)")
    if peer_result is not None:
        print_peer(sequential, concurrent, peer_result, args)
    if logging_result is not None:
        lr = logging_result
        print(f"\nPrediction log, {args.concurrency} concurrent clients, {args.log_rounds} alternating rounds of "
              f"{args.seconds:g} s each:")
        for name in ("on", "off"):
            rounds = ", ".join(f"{r:.1f}" for r in lr[name])
            print(f"  log {name:<3}  median {lr[name + '_median']:7.1f} req/s  (rounds: {rounds})")
        print(f"  overhead of logging in req/s: {100 * lr['overhead']:.1f} % (target <= 5 %)")
        print(f"  server CPU per request: {lr['cpu_ms_on_median']:.2f} ms with the log, {lr['cpu_ms_off_median']:.2f} ms "
              f"without ({100 * lr['cpu_overhead']:+.1f} %); HTTP process alone {lr['http_cpu_ms_on_median']:.2f} "
              f"vs {lr['http_cpu_ms_off_median']:.2f} ms")
        print(f"  rows in the prediction log: {lr['rows_logged']} for the {lr['requests_answered']} requests the "
              "logging server answered (warm-up included)")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "model": model, "sequential": sequential,
                                               "concurrent": concurrent, "ratio": ratio,
                                               "prediction_log": logging_result, "peer": peer_result,
                                               "serve_args": args.serve_arg}, indent=2))
    return 0 if not (sequential["errors"] or concurrent["errors"]) else 1


def timed_phase(server: Server, model: str, prompts: list[str], concurrency: int, args) -> dict:
    """A measured phase, with the CPU time the server's processes spent per request: on a machine
    shared with other work, req/s depends on the share of the cores a server gets, CPU per request
    does not."""
    before = cpu_seconds(server.proc.pid)
    result = asyncio.run(phase(server.url, model, prompts, concurrency, args.seconds, args.max_requests))
    after = cpu_seconds(server.proc.pid)
    result["cpu_ms_per_request"] = 1000 * (after[1] - before[1]) / max(1, result["requests"])
    return result


def measure_peer(home: Path, model: str, prompts: list[str], args) -> dict:
    """The naive server on the model's folder: the same warm-up and phases as tunelab's."""
    from tunelab.runtime import device
    from tunelab.store import Store

    record = Store(home=home).find_model(model)
    if record is None:
        raise SystemExit(f"--peer needs a fine-tuned model of the store; {model} is not one")
    peer = NaiveServer(Path(record.path), device().type, args.peer_handler, args.peer_threads)
    try:
        peer.wait()
        asyncio.run(phase(peer.url, model, prompts, args.concurrency, args.warmup, args.max_requests))
        asyncio.run(phase(peer.url, model, prompts, 1, min(2.0, args.warmup), args.max_requests))
        sequential = timed_phase(peer, model, prompts, 1, args)
        concurrent = timed_phase(peer, model, prompts, args.concurrency, args)
        cpu = cpu_seconds(peer.proc.pid)
    finally:
        peer.stop()
    threads = f", {args.peer_threads} torch thread(s)" if args.peer_threads else ""
    return {"name": f"FastAPI + transformers pipeline ({args.peer_handler} route{threads})", "sequential": sequential,
            "concurrent": concurrent, "cpu_seconds": cpu[1]}


def print_peer(sequential: dict, concurrent: dict, peer: dict, args) -> None:
    print(f"\nAgainst the peer: {peer['name']}, one forward pass per request (benchmarks/naive_server.py)")
    print(f"{'':<34}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'CPU ms/req':>12}")
    rows = (("tunelab, 1 client", sequential), ("peer, 1 client", peer["sequential"]),
            (f"tunelab, {args.concurrency} clients", concurrent), (f"peer, {args.concurrency} clients", peer["concurrent"]))
    for name, r in rows:
        print(f"{name:<34}{r['requests']:>9}{r['rps']:>9.1f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8}"
              f"{r['cpu_ms_per_request']:>12.2f}")
    one = sequential["rps"] / peer["sequential"]["rps"]
    many = concurrent["rps"] / peer["concurrent"]["rps"]
    print(f"tunelab / peer, req/s: 1 client {one:.2f}x, {args.concurrency} clients {many:.2f}x (target >= 2x); "
          f"p50 at 1 client: {sequential['p50_ms']:.1f} ms vs {peer['sequential']['p50_ms']:.1f} ms "
          f"(target: no higher)")
    print(f"each server's {args.concurrency}-client / 1-client req/s: tunelab "
          f"{concurrent['rps'] / sequential['rps']:.2f}x, peer "
          f"{peer['concurrent']['rps'] / peer['sequential']['rps']:.2f}x")


def compare_logging(logged: Server, unlogged: Server, model: str, prompts: list[str], args) -> dict:
    """32-client phases alternating between the server that logs and the one that does not. Besides
    req/s (noisy on a shared machine), the CPU time the server's processes (HTTP process and model
    process) spent per request: on a saturated server, throughput is CPU per request."""
    asyncio.run(phase(unlogged.url, model, prompts, args.concurrency, args.warmup, args.max_requests))
    results = {"on": [], "off": [], "cpu_ms_on": [], "cpu_ms_off": [], "http_cpu_ms_on": [], "http_cpu_ms_off": []}
    for r in range(args.log_rounds):
        order = (("on", logged), ("off", unlogged)) if r % 2 == 0 else (("off", unlogged), ("on", logged))
        for name, srv in order:
            before = cpu_seconds(srv.proc.pid)
            result = asyncio.run(phase(srv.url, model, prompts, args.concurrency, args.seconds, args.max_requests))
            after = cpu_seconds(srv.proc.pid)
            n = max(1, result["requests"])
            results[name].append(result["rps"])
            results[f"cpu_ms_{name}"].append(1000 * (after[1] - before[1]) / n)
            results[f"http_cpu_ms_{name}"].append(1000 * (after[0] - before[0]) / n)
    med = {k: statistics.median(v) for k, v in results.items()}
    return {**results, "on_median": med["on"], "off_median": med["off"], "overhead": 1 - med["on"] / med["off"],
            "cpu_ms_on_median": med["cpu_ms_on"], "cpu_ms_off_median": med["cpu_ms_off"],
            "cpu_overhead": med["cpu_ms_on"] / med["cpu_ms_off"] - 1,
            "http_cpu_ms_on_median": med["http_cpu_ms_on"], "http_cpu_ms_off_median": med["http_cpu_ms_off"]}


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process, of the process and its children), user + system, from /proc."""
    def own(p: int) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    mine = own(pid)
    return mine, mine + sum(own(c) for c in children)


def count_rows(home: Path, model: str) -> int:
    """Rows the logging server wrote for `model` (it has stopped, so everything is flushed)."""
    import sqlite3

    with sqlite3.connect(home / "tunelab.db") as conn:
        return conn.execute("SELECT COUNT(*) FROM prediction_log WHERE model = ?", (model,)).fetchone()[0]


if __name__ == "__main__":
    raise SystemExit(main())
