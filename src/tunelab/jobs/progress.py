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


def print_line(line: str) -> None:
    """print(), flushed at once so that a log file or pipe shows each event as it happens."""
    print(line, flush=True)


def event_line(event: EventRecord, message: str | None = None) -> str:
    """`[time] message`; `message` replaces the event's own text (e.g. its legacy wording)."""
    return f"[{datetime.fromtimestamp(event.created_at):%Y-%m-%d %H:%M:%S}] {message or event.message}"


def watch(store: Store, job_id: str, *, verbose: bool = True, desc: str = "Training",
          write: Callable[[str], None] = print_line, poll_s: float = POLL_SECONDS, bar: bool | None = None,
          shown: Collection[str] = (), text: Callable[[EventRecord], str] | None = None) -> JobRecord:
    """Follow the job to its end and return it.

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
    try:
        for event in follow(store, job_id, poll_s=poll_s):
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
