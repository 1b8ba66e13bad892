"""Polling for tests that wait on other processes (workers, servers): the predicate's first truthy
value, or an AssertionError once `timeout` seconds have passed."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 120.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s")
