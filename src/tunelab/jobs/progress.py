"""What a person watching a job sees, in a terminal or a notebook: a progress bar drawn from the
step events (loss, validation accuracy, ETA) and the other events as `[time] message` lines.

The bar is drawn only where someone watches it: a terminal on stderr, or a notebook with ipywidgets
(a widget). Anywhere else (`make demo > log`, CI, `2>&1 | tee`, a notebook without ipywidgets) the
events are plain lines, with no carriage returns."""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from datetime import datetime

from tunelab.console import in_notebook, interactive, notebook_widgets, tqdm_class
from tunelab.jobs.follow import POLL_SECONDS, follow
from tunelab.store import EventRecord, JobRecord, Store
from tunelab.store.records import QUEUED, RUNNING


def print_line(line: str) -> None:
    """print(), flushed at once so that a log file or pipe shows each event as it happens."""
    print(line, flush=True)


def event_line(event: EventRecord, message: str | None = None) -> str:
    """`[time] message`; `message` replaces the event's own text (e.g. its legacy wording)."""
    return f"[{datetime.fromtimestamp(event.created_at):%Y-%m-%d %H:%M:%S}] {message or event.message}"


def queue_notice(store: Store, job_id: str) -> str | None:
    """A line saying what a queued job waits for (None when it waits for nothing): the jobs running
    and the ones queued before it. The worker takes one job at a time, so a job created while another
    trains sits at "Fine-tune enqueued" for minutes; the legacy service said "Queue number: N"."""
    job = store.get_job(job_id)
    if job.status != QUEUED:
        return None
    key = (job.enqueued_at or job.created_at, job.created_at)
    ahead = [j for j in store.list_jobs(status=RUNNING) if j.id != job.id]
    ahead += sorted((j for j in store.list_jobs(status=QUEUED)
                     if j.id != job.id and (j.enqueued_at or j.created_at, j.created_at) < key),
                    key=lambda j: (j.enqueued_at or j.created_at, j.created_at))
    if not ahead:
        return None
    named = ", ".join(f"{j.legacy_id} {j.status}" for j in ahead[:3]) + (", …" if len(ahead) > 3 else "")
    return (f"Waiting in the queue: {len(ahead)} job(s) ahead of this one ({named}); it starts when a worker "
            "is free (`tunelab api fine_tunes.list --table` shows them).")


def watch(store: Store, job_id: str, *, verbose: bool = True, desc: str = "Training",
          write: Callable[[str], None] = print_line, poll_s: float = POLL_SECONDS, bar: bool | None = None,
          shown: Collection[str] = (), text: Callable[[EventRecord], str] | None = None) -> JobRecord:
    """Follow the job to its end and return it.

    A job that waits behind others gets a line saying so after its "enqueued" event (`queue_notice`).
    `bar`: draw a progress bar on stderr (None: only where `interactive()`, and in a notebook only
    as a widget). Training-only steps
    live in the bar; validation steps and the last step also get a line. Without a bar those step
    lines are the progress, so `verbose=False` (only the bar and warnings or errors) still prints
    them. `shown`: messages the caller has printed already (e.g. the notices of a submission),
    not repeated. `text`: how an event reads (default: its message; the CLI gives the legacy
    wording). Ctrl-C (KeyboardInterrupt) stops the watching, never the job; the bar is closed
    first so that the caller's message lands on a clean line."""
    if bar is None:
        # A text bar in a notebook breaks into one copy per event line: the lines go to stdout, a
        # separate output stream, so the bar's carriage return cannot draw over its last copy.
        bar = interactive() and not (in_notebook() and not notebook_widgets())
    shown = set(shown)
    progress = None
    # Written after the job's "enqueued" event, even when not verbose: it explains the silence
    # until the job starts.
    waiting = queue_notice(store, job_id)
    try:
        for event in follow(store, job_id, poll_s=poll_s):
            if waiting and event.message.startswith("Job enqueued"):
                if verbose and event.message not in shown:
                    write(event_line(event, text(event) if text else None))
                write(waiting)
                waiting = None
                continue
            if event.message in shown:
                continue
            data = event.data or {}
            step = "total_steps" in data and "step" in data
            if step and bar:
                tqdm = tqdm_class()
                if progress is None or progress.total != data["total_steps"]:
                    if progress is not None:
                        progress.close()
                    progress = tqdm(total=data["total_steps"], unit="step", desc=desc, file=sys.stderr,
                                    dynamic_ncols=True)
                progress.update(data["step"] - progress.n)
                postfix = {"loss": f"{data['loss']:.4f}"} if "loss" in data else {}
                if data.get("classification/accuracy") is not None:
                    postfix["val_acc"] = f"{data['classification/accuracy']:.3f}"
                progress.set_postfix(postfix, refresh=False)
            if step and not data.get("validation_loss") and data["step"] != data["total_steps"]:
                continue  # a training-only step: in the bar, or nowhere
            if not verbose and event.level == "info" and not (step and not bar):
                continue
            (progress.write if progress is not None else write)(event_line(event, text(event) if text else None))
    finally:
        if progress is not None:
            progress.close()
    return store.get_job(job_id)
