"""Device and precision choices shared by training and inference."""

from __future__ import annotations

import contextlib
import functools
import os

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


def autocast(dev: torch.device | None = None):
    dev = dev or device()
    if use_bf16(dev):
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
