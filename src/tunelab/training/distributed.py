"""One job as several training processes (`accelerate launch --num_processes N`, which
`tunelab worker --launcher accelerate` runs). Every process trains on its share of each batch; the
main process alone writes events, checkpoints, the results file and the model."""

from __future__ import annotations

import os
import socket
import sys

from tunelab.store import Store


def process_index() -> int:
    """This process's rank: 0 unless started by `accelerate launch` (torchrun sets RANK). Read from the
    environment, not from Accelerate's state, because creating that state early would fix its device."""
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return process_index() == 0


class SecondaryStore:
    """The store as a process other than the main one sees it: every read, and no event or job
    update, so that what a job reports is reported once. Checkpoints and the model are written by
    the main process only (the runner does not reach those writes here)."""

    def __init__(self, store: Store):
        self._store = store

    def __getattr__(self, name: str):
        return getattr(self._store, name)

    def add_event(self, job_id: str, message: str, **kwargs) -> None:
        return None

    def update_job(self, job_id: str, **fields):
        return self._store.get_job(job_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(job_id: str, *, num_processes: int, worker_id: str | None = None, worker_pid: int | None = None,
                   port: int | None = None) -> list[str]:
    """`accelerate launch` running this job in `num_processes` processes on this machine. Every option
    is given, so that no accelerate config file on the machine changes what runs; a port of its own,
    so that two workers on one machine can each launch a job."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(num_processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(port or free_port())]
    if num_processes > 1:
        cmd.append("--multi_gpu")  # torchrun; on a machine without a GPU, Accelerate uses gloo on CPU
    cmd += ["-m", "tunelab.training.launched", job_id]
    if worker_id:
        cmd += ["--worker-id", worker_id]
    if worker_pid:
        cmd += ["--worker-pid", str(worker_pid)]
    return cmd


def finish() -> None:
    """Tear the process group down before the interpreter exits. Left to exit, a process that
    returns first (the secondary after a cancel: it writes nothing) can be aborted by gloo
    ("terminate called without an active exception") while the other still holds the connection,
    and the launcher then reports a failure for a job that stopped cleanly. No barrier: a process
    that returned after an error must not wait on one that is still training."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, killed but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
