"""Each served model runs in its own process, so inference never competes with HTTP for the GIL
(`tunelab serve` on a GPU, or `--model-processes always`; on a CPU models run in the server
process, server/inprocess.py, which saves the inter-process hop).

Why: PyTorch releases the GIL inside every operator and takes it back after, so a forward pass
needs the GIL hundreds of times. In one process with a busy event loop, each of those waits for
the loop's thread to give it up (every 5 ms by default): measured on an H100, a batch of 8 took
9 ms alone and 1200 ms next to a thread running Python. With the model in a child process the
server's thread only parses requests and waits on a pipe.

`ProcessPredictor` is a drop-in for `tunelab.inference.predictor.Predictor` as the server uses it:
`complete`, `score_labels`, `stream` (pieces come back over the pipe as they are generated),
`count_tokens`, `tokenizer` (loaded again in the server, for chat
templates and token counts), `labels`, `method`, `is_classification`, `max_positions`. Calls are
serialized per process; library errors come back as the same typed errors.

A child that dies during a call (killed, out of memory) is started again and the call, a whole
batch of requests, is sent once more: the clients see a slower answer instead of an error. Only
a child that dies again on the same call fails it, as a TemporarilyUnavailableError (503, retry).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from typing import Any

from tunelab.errors import (
    ConflictError, DataFileError, InvalidInputError, ModelUnavailableError, NotFoundError, TemporarilyUnavailableError,
    TunelabError,
)
from tunelab.models import encoding

log = logging.getLogger("tunelab.server")

_ERRORS = {cls.__name__: cls for cls in (InvalidInputError, DataFileError, NotFoundError, ConflictError,
                                         ModelUnavailableError)}


class ProcessPredictor:
    """A predictor loaded and run in a spawned child process. Construct it in a worker thread:
    it blocks until the model is loaded (or raises what loading raised)."""

    def __init__(self, model_id: str, store, *, threads: int | None = None, decision: str = "argmax"):
        url = store.engine.url.render_as_string(hide_password=False)
        self._child_args = (model_id, str(store.home), url, threads, decision)
        self._lock = threading.Lock()
        self.closed = False
        self.model_id = model_id
        self.restarts = 0
        """How often a dead child was replaced (the model loaded again)."""
        info = self._start()
        self.method: str = info["method"]
        self.labels: list[str] | None = info["labels"]
        self.meta = info["meta"]
        self.base_model: str | None = info["base_model"]
        self.max_positions: int | None = info["max_positions"]
        self.device: str = info["device"]
        from tunelab.models.loading import load_tokenizer

        self.tokenizer = load_tokenizer(info["tokenizer_path"])

    # -- the Predictor interface ---------------------------------------------------------------
    @property
    def is_classification(self) -> bool:
        return bool(self.labels)

    @property
    def temperature(self) -> float:
        """The model's fitted temperature, which the child applies to every label distribution."""
        return float(getattr(self.meta, "temperature", 1.0) or 1.0)

    @property
    def alive(self) -> bool:
        """False once closed. A child that died is replaced at the next call (see the module
        docstring), so the pool keeps this predictor rather than loading a second copy."""
        return not self.closed

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def count_tokens(self, text: str) -> int:
        """Tokens in `text`, counted here (not in the child); a lower bound for text far beyond the
        model's positions, which is never tokenized whole (tunelab.models.encoding.count_tokens)."""
        return encoding.count_tokens(self.tokenizer, text, self.max_positions)

    def complete(self, prompts: list[str], **kwargs):
        return self._request(("complete", list(prompts), kwargs))

    def score_labels(self, prompts: list[str], **kwargs):
        return self._request(("score_labels", list(prompts), kwargs))

    def stream(self, prompt: str, on_piece, **kwargs):
        """`Predictor.stream` in the child: each piece comes back over the pipe as it is generated.
        Not sent again if the child dies (pieces have gone out): a 503 instead. A False from
        `on_piece` cannot stop the child, so the rest is read and dropped."""
        with self._lock:
            if self.closed:
                raise TemporarilyUnavailableError(f"{self.model_id} was unloaded while this request waited; "
                                                  "send it again.", retry_after=0, code="model_unloaded")
            wanted = True
            try:
                self._conn.send(("stream", [prompt], kwargs))
                while True:
                    status, payload = self._conn.recv()
                    if status == "piece":
                        wanted = wanted and on_piece(payload) is not False
                    elif status == "error":
                        raise _rebuild(payload)
                    else:
                        return payload
            except (EOFError, OSError):
                cause = self._exit_cause()
                self.restarts += 1
                self._conn.close()
                self._start()
                raise TemporarilyUnavailableError(f"The process serving {self.model_id} {cause} while streaming; "
                                                  "send the request again.", retry_after=1,
                                                  code="model_crashed") from None

    # -- plumbing ------------------------------------------------------------------------------
    def _start(self) -> dict:
        """Start a child and wait for its first word: the model's description, or why it did not load."""
        ctx = multiprocessing.get_context("spawn")  # fork is unsafe with CUDA and with threads
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_child_main, args=(child, *self._child_args),
                                   name=f"tunelab-model:{self.model_id}", daemon=True)
        self.process.start()
        child.close()
        try:
            return self._exchange(None)
        except _ChildDied as died:
            self.closed = True
            self._stop_child()
            raise TemporarilyUnavailableError(f"The process loading {self.model_id} {died.cause}.",
                                              code="model_crashed") from None
        except BaseException:
            self.closed = True
            self._stop_child()
            raise

    def _exchange(self, message) -> Any:
        """Send `message` (None: send nothing) and return the child's answer; _ChildDied when it is gone."""
        try:
            if message is not None:
                self._conn.send(message)
            status, payload = self._conn.recv()
        except (EOFError, OSError):
            raise _ChildDied(self._exit_cause()) from None
        if status == "error":
            raise _rebuild(payload)
        return payload

    def _request(self, message) -> Any:
        with self._lock:
            if self.closed:
                raise TemporarilyUnavailableError(f"{self.model_id} was unloaded while this request waited; "
                                                  "send it again.", retry_after=0, code="model_unloaded")
            try:
                return self._exchange(message)
            except _ChildDied as died:
                first = died.cause
            log.warning("The process serving %s %s; loading the model again to run the call once more.",
                        self.model_id, first)
            self.restarts += 1
            self._conn.close()
            self._start()  # raises (and closes this predictor) when the model no longer loads
            try:
                return self._exchange(message)
            except _ChildDied as died:
                # Twice on the same call: perhaps the call itself kills it (memory). The pool loads
                # a fresh predictor for the next request; this one is not retried again.
                self.closed = True
                log.warning("The process serving %s %s again on the same call; giving up on it.",
                            self.model_id, died.cause)
                raise TemporarilyUnavailableError(
                    f"The process serving {self.model_id} {first}, and {died.cause} again when the request was "
                    "run once more (out of memory?); the model is loaded afresh for the next request.",
                    retry_after=2, code="model_crashed") from None

    def _exit_cause(self) -> str:
        """How the child ended, in words ("was killed by signal 9 (SIGKILL) ..."), once it is reaped."""
        self.process.join(timeout=5)
        code = self.process.exitcode
        if code is None:
            return "closed its pipe but is still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = "unknown signal"
            why = " from outside: `kill -9`, or the kernel when memory ran out" if -code == signal.SIGKILL else ""
            return f"was killed by signal {-code} ({name}){why}"
        return f"exited with code {code}"

    def _stop_child(self, timeout: float = 5.0) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self._conn.close()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the child once its current call (if any) is answered."""
        with self._lock:
            if not self.closed:
                self.closed = True
                try:
                    self._conn.send(("close", None, None))
                except OSError:
                    pass
        self._stop_child(timeout)

    def close_in_background(self) -> None:
        threading.Thread(target=self.close, name=f"close:{self.model_id}", daemon=True).start()


class _ChildDied(Exception):
    """The pipe to the child broke: it is gone. `cause` says how (exit code or signal)."""

    def __init__(self, cause: str):
        super().__init__(cause)
        self.cause = cause


def _describe(exc: BaseException) -> dict[str, str]:
    message = exc.render() if isinstance(exc, TunelabError) else str(exc)
    return {"type": type(exc).__name__, "message": message}


def _rebuild(payload: dict[str, str]) -> Exception:
    cls = _ERRORS.get(payload["type"])
    if cls is not None:
        return cls(payload["message"])
    if "OutOfMemory" in payload["type"]:
        return TemporarilyUnavailableError(f"Out of memory while running the model: {payload['message']}",
                                           retry_after=2, code="out_of_memory")
    return RuntimeError(f"{payload['type']} in the model process: {payload['message']}")


def _child_main(conn, model_id: str, home: str, url: str, threads: int | None, decision: str = "argmax") -> None:
    # Ctrl-C reaches the whole process group; the server stops its children itself (or they see
    # the pipe close when it dies), so a child never dies halfway through a request.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["TUNELAB_HOME"] = home
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import torch

        from tunelab.inference.predictor import load_predictor
        from tunelab.runtime import device
        from tunelab.store import Store

        if device().type == "cpu":
            # Leave cores to the server's HTTP thread (and its clients): a parallel region waits for
            # its slowest thread, so one preempted intra-op thread slows every operator.
            cores = os.cpu_count() or 2
            torch.set_num_threads(threads or max(1, cores - (2 if cores > 4 else 1)))
        store = Store(home=home, url=url)
        # The model's temperature is in its meta, so score_labels and complete answer calibrated here.
        predictor = load_predictor(model_id, store, decision=decision)
        record = store.find_model(model_id)
        if record is not None:
            tokenizer_path = record.path
        else:
            from tunelab.models.registry import resolve_model

            tokenizer_path = str(resolve_model(model_id, store, classification=False).path)
        config = getattr(predictor.model, "config", None)
        store.engine.dispose()
        conn.send(("ok", {"method": predictor.method, "labels": predictor.labels, "meta": predictor.meta,
                          "base_model": predictor.base_model,
                          "max_positions": getattr(config, "max_position_embeddings", None),
                          "device": str(next(predictor.model.parameters()).device),
                          "tokenizer_path": str(tokenizer_path)}))
    except BaseException as exc:  # noqa: BLE001 - reported to the server, which maps it to a response
        conn.send(("error", _describe(exc)))
        return
    while True:
        try:
            op, prompts, kwargs = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if op == "close":
            return
        try:
            if op == "complete":
                result = predictor.complete(prompts, **kwargs)
            elif op == "score_labels":
                result = predictor.score_labels(prompts, **kwargs)
            elif op == "stream":
                result = predictor.stream(prompts[0], lambda piece: conn.send(("piece", piece)), **kwargs)
            else:
                raise ValueError(f"unknown operation {op!r}")
            conn.send(("ok", result))
        except Exception as exc:  # noqa: BLE001 - sent back; the process keeps serving
            conn.send(("error", _describe(exc)))
