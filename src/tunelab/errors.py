"""Typed errors. Library code raises these; only the CLI (and the server) turn them into output.

Every error carries a message a user can act on. `problems` holds several findings when a check
reports everything at once instead of stopping at the first problem.
"""

from __future__ import annotations


class TunelabError(Exception):
    """Base of every error tunelab raises on purpose (never a bug)."""

    exit_code = 1

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None):
        self.message = message
        self.problems = list(problems or [])
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.message]
        lines += [f"  - {p}" for p in self.problems]
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class InvalidInputError(TunelabError):
    """The user's data or arguments cannot be used as given."""

    exit_code = 2


class DataFileError(InvalidInputError):
    """A data file cannot be read or validated (names file, line and field where known)."""


class NotFoundError(TunelabError):
    """A file, job or model id that the store does not know."""

    exit_code = 3


class ConflictError(TunelabError):
    """The request is valid but the object's state forbids it (e.g. cancelling a finished job)."""

    exit_code = 4


class ModelUnavailableError(TunelabError):
    """A base model is known but its weights are not installed on this machine."""

    exit_code = 5


class JobFailedError(TunelabError):
    """A fine-tuning job ended without a model (failed or cancelled), for callers that waited on it."""

    def __init__(self, message: str, *, job_id: str, status: str, **kwargs):
        self.job_id = job_id
        self.status = status
        super().__init__(message, **kwargs)
