"""Thread choice of CPU loops (tunelab.runtime.CpuThreads): fewer intra-op threads when other
processes keep the machine busy, all of them when the machine is idle, a fixed count from TUNELAB_THREADS."""

from __future__ import annotations

import pytest
import torch

from tunelab import runtime


@pytest.fixture(autouse=True)
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


class FakeMachine:
    """/proc readings: machine-wide busy ticks and this process's ticks, advanced by hand."""

    def __init__(self, monkeypatch, cores: int = 2):
        self.now, self.busy, self.mine = 0.0, 0, 0
        monkeypatch.setattr(runtime, "_busy_jiffies", lambda: (self.busy, self.mine))
        monkeypatch.setattr(runtime, "available_cores", lambda: cores)
        monkeypatch.setattr(runtime.os, "sysconf", lambda name: 100)  # ticks per second

    def run(self, seconds: float, others_cores: float, my_cores: float) -> None:
        self.now += seconds
        self.mine += int(100 * seconds * my_cores)
        self.busy += int(100 * seconds * (others_cores + my_cores))


def make(machine: FakeMachine, monkeypatch) -> runtime.CpuThreads:
    monkeypatch.delenv("TUNELAB_THREADS", raising=False)
    threads = runtime.CpuThreads(every_s=10.0, probe_s=0.0)
    threads._clock = lambda: machine.now
    threads._last = (machine.now, (machine.busy, machine.mine))
    return threads


def test_all_cores_when_idle_one_thread_when_another_process_keeps_a_core_busy(monkeypatch):
    machine = FakeMachine(monkeypatch)
    threads = make(machine, monkeypatch)
    machine.run(10, others_cores=0.1, my_cores=1.9)
    assert threads.adjust() == 2 and torch.get_num_threads() == 2
    machine.run(10, others_cores=1.2, my_cores=0.8)  # one other busy process: both cores still pay
    assert threads.adjust() == 2
    machine.run(10, others_cores=1.8, my_cores=0.2)
    assert threads.adjust() == 1 and torch.get_num_threads() == 1
    machine.run(5, others_cores=0.0, my_cores=1.0)
    assert threads.adjust() == 1, "re-read only every every_s seconds"
    machine.run(10, others_cores=0.0, my_cores=1.0)
    assert threads.adjust() == 2
    machine.run(10, others_cores=6.0, my_cores=0.3)  # a heavily shared machine: never below one thread
    assert threads.adjust() == 1
    assert threads.history[-3:] == [1, 2, 1]


def test_tunelab_threads_fixes_the_count(monkeypatch):
    FakeMachine(monkeypatch)
    monkeypatch.setenv("TUNELAB_THREADS", "1")
    threads = runtime.CpuThreads()
    assert threads.threads == 1 and torch.get_num_threads() == 1
    assert threads.adjust(force=True) == 1


def test_busy_jiffies_reads_proc():
    reading = runtime._busy_jiffies()
    if reading is None:
        pytest.skip("no /proc here")
    busy, mine = reading
    assert busy >= mine >= 0


def test_the_device_event_says_why_a_cpu_without_native_bf16_trains_slowly(monkeypatch):
    monkeypatch.delenv("TUNELAB_PRECISION", raising=False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    cpu = torch.device("cpu")
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    assert runtime.describe_device(cpu) == "Device: CPU (2 cores), bf16 autocast."
    monkeypatch.setenv("TUNELAB_PRECISION", "bf16")
    assert runtime.describe_device(cpu) == "Device: CPU (2 cores), bf16 weights, fp32 master copies."
    monkeypatch.delenv("TUNELAB_PRECISION")
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    slow = runtime.describe_device(cpu)
    assert slow.startswith("Device: CPU (2 cores), fp32: this CPU has no native bf16") and "52 min" in slow
    monkeypatch.setenv("TUNELAB_PRECISION", "fp32")  # the user's choice needs no explanation
    assert runtime.describe_device(cpu) == "Device: CPU (2 cores), fp32."


def test_the_device_event_names_the_device_the_loop_will_use(monkeypatch):
    # the runner asks before the loop moves the model: the default must be runtime.device(), not the model's
    monkeypatch.setattr(runtime, "device", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda dev=None: "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.delenv("TUNELAB_PRECISION", raising=False)
    assert runtime.describe_device() == "Device: NVIDIA H100, bf16 autocast."


def test_attention_on_a_gpu_leaves_out_cudnn_which_plans_every_new_shape_and_puts_it_back_after():
    # The flags are process-wide switches that exist in CPU builds too, so this runs anywhere.
    assert torch.backends.cuda.cudnn_sdp_enabled()
    for context in (runtime.attention_kernels(torch.device("cuda")), runtime.autocast(torch.device("cuda"))):
        with context:
            assert not torch.backends.cuda.cudnn_sdp_enabled()
            assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
        assert torch.backends.cuda.cudnn_sdp_enabled()


def test_attention_on_a_cpu_is_left_alone(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    with runtime.autocast(torch.device("cpu")):
        assert torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    assert not torch.is_autocast_enabled("cpu")


def test_a_model_for_inference_stores_bf16_weights_where_bf16_is_native(tiny_models, monkeypatch):
    """autocast then has no weights to cast in each forward pass; buffers (positions) keep their dtype,
    and the label log-probabilities stay within autocast's own rounding."""
    from tunelab.models.heads import BertClsMeanForSequenceClassification

    monkeypatch.delenv("TUNELAB_PRECISION", raising=False)
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)
    cpu = torch.device("cpu")

    def load():
        torch.manual_seed(0)
        return BertClsMeanForSequenceClassification.from_pretrained(str(tiny_models.encoder), num_labels=3).train()

    ids = torch.tensor([[1, 5, 9, 17, 2]])
    reference = load().eval()
    with runtime.autocast(cpu), torch.no_grad():
        expected = torch.log_softmax(reference(input_ids=ids).logits.float(), -1)
    model = load()
    buffers = {n: b.dtype for n, b in model.named_buffers()}
    assert runtime.for_inference(model, cpu) is model and not model.training
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {n: b.dtype for n, b in model.named_buffers()} == buffers
    with runtime.autocast(cpu), torch.no_grad():
        got = torch.log_softmax(model(input_ids=ids).logits.float(), -1)
    assert torch.allclose(got, expected, atol=0.02)
    for env in ("autocast", "fp32"):  # the behaviour before, and full precision, keep fp32 weights
        monkeypatch.setenv("TUNELAB_PRECISION", env)
        assert {p.dtype for p in runtime.for_inference(load(), cpu).parameters()} == {torch.float32}
    monkeypatch.delenv("TUNELAB_PRECISION")
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    assert {p.dtype for p in runtime.for_inference(load(), cpu).parameters()} == {torch.float32}
