"""Typed errors. Library code raises these; only the CLI (and the server) turn them into output.

Every error carries a message a user can act on. `problems` holds several findings when a check
reports everything at once instead of stopping at the first problem.

Exit codes of the CLI (`tunelab --help` and the README list them too); each error class carries its
own as `exit_code`, and `tunelab.cli.main` returns it:

    0    success
    1    a fine-tuning job failed (JobFailedError, `fine_tunes.follow` of a failed job), or another
         error that is not about the user's input
    2    usage or input error: bad arguments or data, a request the object's state forbids
         (InvalidInputError, DataFileError, ConflictError; argparse's own errors are 2 as well)
    3    not found: an unknown file, job or model id, a missing path, a base model whose weights
         are not installed (NotFoundError, ModelUnavailableError)
    130  interrupted (Ctrl-C)
"""

from __future__ import annotations


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "a fine-tuning job failed (or another error that is not about your input)",
    EXIT_USAGE: "usage or input error (bad arguments or data, or a request the object's state forbids)",
    EXIT_NOT_FOUND: "not found (unknown file, job or model id; missing path; base model not installed)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}
"""The CLI's exit codes, for `tunelab --help` and the README."""


class TunelabError(Exception):
    """Base of every error tunelab raises on purpose (never a bug)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None):
        self.message = message
        self.problems = list(problems or [])
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.message]
        # An indented problem details the one above it (a file's bad lines under "training file: ..."):
        # it goes under that bullet, without a bullet of its own.
        lines += [f"  {p}" if p[:1].isspace() else f"  - {p}" for p in self.problems]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class InvalidInputError(TunelabError):
    """The user's data or arguments cannot be used as given."""

    exit_code = EXIT_USAGE


class DataFileError(InvalidInputError):
    """A data file cannot be read or validated (names file, line and field where known)."""


class RawTableError(DataFileError):
    """A table of raw reviews (text and label columns) given where a prompt/completion file belongs.
    `columns`: its first row's fields; `presets`: the `datasets build` presets that fit them."""

    def __init__(self, message: str, *, columns: list[str], presets: list[str], hint: str | None = None):
        self.columns = list(columns)
        self.presets = list(presets)
        super().__init__(message, hint=hint)


class NotFoundError(TunelabError):
    """A file, job or model id that the store does not know."""

    exit_code = EXIT_NOT_FOUND


class MissingFileError(DataFileError, NotFoundError):
    """A data file that does not exist: both unusable input and not found, so that Python callers
    catching either get it; the CLI exits 3 (not found) for it."""

    exit_code = EXIT_NOT_FOUND


class ConflictError(TunelabError):
    """The request is valid but the object's state forbids it (e.g. cancelling a finished job)."""

    exit_code = EXIT_USAGE


class ModelUnavailableError(TunelabError):
    """A base model is known but its weights are not installed on this machine."""

    exit_code = EXIT_NOT_FOUND


class TemporarilyUnavailableError(TunelabError):
    """A request that could not be served now but may succeed when sent again: a model process
    that crashed and crashed again when reloaded, memory that ran out, a deadline that passed
    while the request waited. `retry_after`: the seconds a client should wait before retrying;
    `code`: what happened, in a word (the `error.code` of an HTTP answer)."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, retry_after: float = 1.0, code: str = "temporarily_unavailable", **kwargs):
        self.retry_after = retry_after
        self.code = code
        super().__init__(message, **kwargs)


class OverloadedError(TemporarilyUnavailableError):
    """More work is waiting for a model than the server accepts (`tunelab serve --max-queue`)."""

    def __init__(self, message: str, *, retry_after: float = 1.0, code: str = "queue_full", **kwargs):
        super().__init__(message, retry_after=retry_after, code=code, **kwargs)


class JobFailedError(TunelabError):
    """A fine-tuning job ended without a model (failed or cancelled), for callers that waited on it."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, job_id: str, status: str, **kwargs):
        self.job_id = job_id
        self.status = status
        super().__init__(message, **kwargs)


class DiskFullError(TunelabError):
    """The disk filled up while tunelab was writing (a checkpoint, a model, a backup)."""

    exit_code = EXIT_FAILED
    code = "disk_full"
    """The `error.code` of a job that failed for this reason."""

    def __init__(self, message: str, *, folder: str, **kwargs):
        self.folder = folder
        super().__init__(message, **kwargs)


class ResumeStateError(TunelabError):
    """A job's saved training state (its `resume` folder) cannot be loaded by this tunelab: it was
    written by a version whose optimizer was laid out differently."""

    exit_code = EXIT_FAILED
    code = "resume_state_incompatible"
    """The `error.code` of a job that failed for this reason."""
