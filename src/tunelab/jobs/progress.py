"""What a person watching a job sees, in a terminal or a notebook: a progress bar drawn from the
step events (loss, validation accuracy, ETA) and the other events as `[time] message` lines."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime

from tunelab.jobs.follow import POLL_SECONDS, follow
from tunelab.store import EventRecord, JobRecord, Store


def event_line(event: EventRecord) -> str:
    return f"[{datetime.fromtimestamp(event.created_at):%Y-%m-%d %H:%M:%S}] {event.message}"


def watch(store: Store, job_id: str, *, verbose: bool = True, desc: str = "Training",
          write: Callable[[str], None] = print, poll_s: float = POLL_SECONDS) -> JobRecord:
    """Follow the job to its end and return it. `verbose=False` shows only the bar and warnings or
    errors. Ctrl-C (KeyboardInterrupt) stops the watching, never the job; the bar is closed first
    so that the caller's message lands on a clean line."""
    from tqdm.auto import tqdm

    bar = None
    try:
        for event in follow(store, job_id, poll_s=poll_s):
            data = event.data or {}
            if "total_steps" in data and "step" in data:
                if bar is None or bar.total != data["total_steps"]:
                    if bar is not None:
                        bar.close()
                    bar = tqdm(total=data["total_steps"], unit="step", desc=desc, file=sys.stderr,
                               dynamic_ncols=True)
                bar.update(data["step"] - bar.n)
                postfix = {"loss": f"{data['loss']:.4f}"} if "loss" in data else {}
                if data.get("classification/accuracy") is not None:
                    postfix["val_acc"] = f"{data['classification/accuracy']:.3f}"
                bar.set_postfix(postfix, refresh=False)
                # Training-only steps live in the bar; validation steps and the last one get a line too.
                if not data.get("validation_loss") and data["step"] != data["total_steps"]:
                    continue
            if not verbose and event.level == "info":
                continue
            (bar.write if bar is not None else write)(event_line(event))
    finally:
        if bar is not None:
            bar.close()
    return store.get_job(job_id)
