"""Models served inside the server process, run by the batchers' inference thread.

On a CPU this is the faster way to serve (`tunelab serve --model-processes auto|never`): a request
to a model in its own process pays a pickle, a pipe write and a wake-up on both sides per batch,
and the two processes' Python threads contend for the same few cores. In one process the
batching thread calls the model directly.

What the separate process protected against is kept small:
- The GIL: PyTorch releases it inside each operator and takes it back between operators, so the
  inference thread waits for the event loop's thread at every operator boundary, up to the
  interpreter's switch interval (5 ms by default). The interval is lowered here, so that a busy
  HTTP thread hands the GIL over within a fraction of a millisecond.
- Cores: each forward pass runs on one thread (no intra-op pool whose operators wait for a
  preempted thread), and as many batches run at once as there are cores: the model is shared by
  one `Predictor` replica per core, each with its own copy of the tokenizer (a Rust tokenizer must
  not be used by two threads at once) and its own lock (`ConcurrentPredictor`); the batchers keep
  that many batches in flight (MicroBatcher.max_in_flight) while the next one fills up.
On a GPU (hundreds of short kernel launches per forward pass, each needing the GIL) processes stay
the default.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import queue
import sys
import threading

# Seconds a thread may hold the GIL while another waits (CPython's default is 0.005).
SWITCH_INTERVAL_S = 0.0005

_configured = threading.Lock()
_done = False


def models_in_processes() -> bool:
    """`--model-processes auto`: separate processes on a GPU, this process on a CPU."""
    from tunelab.runtime import device

    return device().type == "cuda"


def replicas() -> int:
    """Batches served at once in this process: one per core on a CPU (TUNELAB_THREADS overrides),
    one on a GPU (which runs one batch's kernels at a time anyway)."""
    from tunelab.runtime import available_cores, device

    if device().type != "cpu":
        return 1
    fixed = os.environ.get("TUNELAB_THREADS", "")
    return int(fixed) if fixed.isdigit() and int(fixed) > 0 else available_cores()


class ConcurrentPredictor:
    """`Predictor` replicas sharing one model: a call takes a free replica (waiting for one when all
    are busy), so that several batches run at once. Everything else (labels, meta, the tokenizer for
    the event loop's token counts and chat templates) is the primary predictor's."""

    def __init__(self, predictor, n: int):
        self.primary = predictor
        self.concurrency = max(1, n)
        self.threads = 1  # per forward pass; `concurrency` passes run at once
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(self.concurrency):
            self._free.put(dataclasses.replace(predictor, tokenizer=copy.deepcopy(predictor.tokenizer),
                                               lock=threading.Lock()))

    def __getattr__(self, name: str):
        return getattr(self.primary, name)

    def _call(self, method: str, *args, **kwargs):
        # OpenMP keeps the thread count per calling thread: a batch thread that never set it would
        # run its forward pass on every core, against the other replicas.
        import torch

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        replica = self._free.get()
        try:
            return getattr(replica, method)(*args, **kwargs)
        finally:
            self._free.put(replica)

    def complete(self, prompts: list[str], **kwargs):
        return self._call("complete", prompts, **kwargs)

    def score_labels(self, prompts: list[str], **kwargs):
        return self._call("score_labels", prompts, **kwargs)


def configure_process(threads: int | None = None) -> None:
    """Thread settings for a server that runs models itself (once per process)."""
    global _done
    with _configured:
        if _done:
            return
        import torch

        torch.set_num_threads(threads or 1)  # one thread per forward pass; replicas() passes at once
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _done = True


def load_in_process(model_id: str, store=None, *, decision: str = "argmax"):
    """A Predictor in this process, with the process set up for serving it."""
    from tunelab.inference.predictor import load_predictor

    configure_process()
    return ConcurrentPredictor(load_predictor(model_id, store, decision=decision), replicas())
