"""Device and precision choices shared by training and inference."""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time

import torch


@functools.cache
def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


def device() -> torch.device:
    if os.environ.get("TUNELAB_DEVICE"):
        return torch.device(os.environ["TUNELAB_DEVICE"])
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def use_bf16(dev: torch.device | None = None) -> bool:
    """bf16 autocast where the hardware does it natively; fp32 elsewhere (emulated bf16 is slower)."""
    if os.environ.get("TUNELAB_PRECISION") == "fp32":
        return False
    dev = dev or device()
    if dev.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_has_bf16()


def bf16_weights(dev: torch.device | None = None) -> bool:
    """TUNELAB_PRECISION=bf16: train with the weights in bf16 and fp32 master copies
    (`training.precision`) where bf16 is native, instead of fp32 weights under bf16 autocast. Opt-in:
    on a 2-core AVX512-BF16 CPU it made minilm-l6's loop no faster (41-45 against 44 samples/s);
    its aim is a GPU loop that waits on the host, where autocast's casts are about a third of the
    kernel launches (smollm2-135m on an H100), and it has not been measured there yet."""
    return use_bf16(dev) and os.environ.get("TUNELAB_PRECISION") == "bf16"


def describe_device(dev: torch.device | None = None) -> str:
    """One line for a job's events: where it trains and in which precision. On a CPU without
    native bf16 it says why training is slow there, since nothing else would: measured on 2-core
    hosts, the bundled reviews' default recipe trained in 52 min in fp32 on AVX2 against 11-12 min
    with AVX512-BF16."""
    dev = dev or device()
    precision = ("bf16 weights, fp32 master copies" if bf16_weights(dev)
                 else "bf16 autocast" if use_bf16(dev) else "fp32")
    if dev.type != "cpu":
        name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
        return f"Device: {name}, {precision}."
    where = f"Device: CPU ({available_cores()} cores), {precision}"
    if precision == "fp32" and os.environ.get("TUNELAB_PRECISION") != "fp32":  # not the user's own choice
        return (f"{where}: this CPU has no native bf16 (AVX512-BF16 or AMX), so training takes several times "
                "longer than on one that has it (2 epochs of the bundled reviews: 52 min on a 2-core AVX2 "
                "CPU, 11-12 min on a 2-core CPU with AVX512-BF16).")
    return f"{where}."


def attention_kernels(dev: torch.device | None = None):
    """On a GPU, scaled-dot-product attention without the cuDNN backend. PyTorch (2.5+) tries cuDNN
    first on Hopper and newer cards, and cuDNN builds an execution plan for every new (batch, length)
    shape, about half a second forward and as much backward. Length-bucketed training batches and
    served batches change shape all the time: measured on an H100, tunelab's minilm-l6 loop ran at
    1,996 samples/s over 16,384 reviews with cuDNN and at 4,373 without it.
    FlashAttention and the memory-efficient kernel need no plan. The switches are process-wide:
    where serving threads overlap, one thread's exit can switch cuDNN back on while another runs,
    which costs that batch a plan and changes no result."""
    dev = dev or device()
    if dev.type != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


@contextlib.contextmanager
def autocast(dev: torch.device | None = None):
    """bf16 autocast where the hardware has it natively, and the attention kernels of
    `attention_kernels`: every forward pass of inference runs under it."""
    dev = dev or device()
    with contextlib.ExitStack() as stack:
        stack.enter_context(attention_kernels(dev))
        if use_bf16(dev):
            stack.enter_context(torch.autocast(device_type=dev.type, dtype=torch.bfloat16))
        yield


def for_inference(model: torch.nn.Module, dev: torch.device | None = None) -> torch.nn.Module:
    """`model` on the device, for `autocast`'s forward passes: where bf16 is native its weights are
    stored in bf16, so autocast no longer casts every matrix again in every forward pass (its fp32
    operations, LayerNorm and softmax, still run in fp32). Measured on a 2-core AVX512-BF16 CPU with
    minilm-l6: one 35-token review 12.7 -> 4.5 ms, a batch of 32 of 74 tokens 130 -> 95 ms; the
    label log-probabilities moved by at most 0.003 (autocast rounds the same weights to bf16 in its
    matrix products already). Parameters only: buffers such as rotary frequencies keep their dtype.
    TUNELAB_PRECISION=autocast keeps the fp32 weights (the behaviour before, for comparison)."""
    dev = dev or device()
    model.to(dev)
    if use_bf16(dev) and os.environ.get("TUNELAB_PRECISION") != "autocast":
        cast_parameters(model, torch.bfloat16)
    return model.eval()


def cast_parameters(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """The floating-point parameters in `dtype`, in place: the same Parameter objects, so an optimizer
    or a wrapper holding them still does. Buffers keep theirs (rotary position frequencies must stay
    fp32; the models compute with them in fp32 themselves)."""
    for param in model.parameters():
        if param.is_floating_point():
            param.data = param.data.to(dtype)


def _busy_jiffies() -> tuple[int, int] | None:
    """(CPU time of the whole machine, of this process), in clock ticks, from /proc; None elsewhere."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
        with open("/proc/self/stat") as fh:
            mine = fh.read().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return None
    busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait
    return busy, int(mine[11]) + int(mine[12])


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class CpuThreads:
    """Picks the intra-op thread count of a CPU loop from what other processes leave free.

    A parallel operator waits for its slowest thread; when other processes keep a core busy, the
    thread scheduled on it is preempted for whole time slices and every operator waits for it.
    Measured on a 2-core machine shared with other jobs (load ~7): a MiniLM training step took
    2-3x longer with 2 threads than with 1; next to a single busy process (load ~2) 2 threads were
    still faster. So a thread is given up only when the other processes keep more than
    cores - 0.5 cores busy (more for each further core they take). The choice is
    revisited every `every_s` seconds from the CPU time the other processes used meanwhile.
    TUNELAB_THREADS fixes the count instead."""

    def __init__(self, every_s: float = 10.0, probe_s: float = 0.1):
        self.every_s = every_s
        self.cores = available_cores()
        fixed = os.environ.get("TUNELAB_THREADS")
        self.fixed = int(fixed) if fixed and fixed.isdigit() and int(fixed) > 0 else None
        self._clock = time.monotonic
        self.threads = self.fixed or torch.get_num_threads()
        self.history: list[int] = []
        """Each thread count chosen, in order (the benchmarks print it)."""
        if self.fixed:
            self._set(self.fixed)
            return
        self._last = (self._clock(), _busy_jiffies())
        if self._last[1] is None or self.cores < 2:
            return
        time.sleep(probe_s)  # a first reading before the first step
        self.adjust(force=True)

    def _set(self, n: int) -> None:
        n = max(1, min(self.cores, n))
        if n != torch.get_num_threads():
            torch.set_num_threads(n)
        self.threads = n
        self.history.append(n)

    def adjust(self, force: bool = False) -> int:
        """Call between steps: cheap, and only every `every_s` seconds does it read /proc."""
        if self.fixed or self.cores < 2:
            return self.threads
        now = self._clock()
        then, before = self._last
        if not force and now - then < self.every_s:
            return self.threads
        after = _busy_jiffies()
        self._last = (now, after)
        if before is None or after is None or now <= then:
            return self.threads
        tick = os.sysconf("SC_CLK_TCK")
        others = max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / tick / (now - then))
        # Fewer threads only when the others alone (nearly) fill the machine: measured on 2 cores, a
        # MiniLM epoch ran 1.4x faster with 2 threads than 1 next to one busy process (load ~2), and
        # 2-3x slower next to several (load ~7).
        over = others - (self.cores - 1)
        self._set(self.cores - max(0, math.ceil(over - 0.5)))
        return self.threads
