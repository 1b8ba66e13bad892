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
- Cores: PyTorch's intra-op threads are capped to leave a core to the HTTP thread (as the model
  process does), since a parallel operator waits for its slowest thread.
On a GPU (hundreds of short kernel launches per forward pass, each needing the GIL) processes stay
the default.
"""

from __future__ import annotations

import os
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


def configure_process(threads: int | None = None) -> None:
    """Thread settings for a server that runs models itself (once per process)."""
    global _done
    with _configured:
        if _done:
            return
        import torch

        from tunelab.runtime import available_cores

        cores = available_cores()
        fixed = os.environ.get("TUNELAB_THREADS", "")
        threads = threads or (int(fixed) if fixed.isdigit() and int(fixed) > 0 else None)
        torch.set_num_threads(threads or max(1, cores - (2 if cores > 4 else 1)))
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        _done = True


def load_in_process(model_id: str, store=None, *, decision: str = "argmax"):
    """A Predictor in this process, with the process set up for serving it."""
    from tunelab.inference.predictor import load_predictor

    configure_process()
    return load_predictor(model_id, store, decision=decision)
