"""Files of the store as jobs use them: uploads, the files a running job still needs, a job's
results. ("A path or a file id" is resolved by tunelab.data.files, below planning.)"""

from __future__ import annotations

from pathlib import Path

from tunelab.data.files import FINE_TUNE
from tunelab.data.readers import read_prompt_completion
from tunelab.errors import InvalidInputError
from tunelab.store import FileRecord, JobRecord, Store
from tunelab.store.records import TERMINAL


def upload_file(store: Store, path: str | Path, purpose: str = FINE_TUNE, *,
                filename: str | None = None, expires_after: int | None = None) -> FileRecord:
    """Validate (fine-tune data must parse) and store a file; `expires_after`: seconds until the
    store deletes it."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"File {path} does not exist.")
    rows = read_prompt_completion(path) if purpose == FINE_TUNE else None
    return store.add_file(path, purpose=purpose, filename=filename, n_rows=len(rows) if rows is not None else None,
                          expires_after=expires_after)


def jobs_using(store: Store, file_id: str) -> list[str]:
    """Unfinished jobs that still need the file (deleting it would fail them)."""
    return [j.id for j in store.list_jobs() if j.status not in TERMINAL
            and file_id in (j.training_file, j.validation_file)]


def results_path(store: Store, job: JobRecord) -> Path:
    """The job's results CSV in the legacy columns: the job's own (growing while it runs, so its
    progress can be read), else its stored result file. (A job of the current endpoint stores its
    result file in the current columns; the job's folder keeps the legacy ones.)"""
    path = store.job_dir(job.id) / "results.csv"
    if not path.exists() and job.result_file:
        path = Path(store.get_file(job.result_file).path)
    if not path.exists():
        if job.status in ("failed", "cancelled"):
            # "yet" would promise results that will never come.
            message = (job.error or {}).get("message") if job.status == "failed" else None
            reason = f" ({message})" if message else ""
            raise InvalidInputError(f"Job {job.legacy_id} has no results: it {job.status} before its first "
                                    f"step was recorded{reason}.")
        raise InvalidInputError(f"Job {job.legacy_id} has no results yet (status: {job.status}).")
    return path


SEPARATOR_ROWS = 2000
"""Training rows read to find a model's prompt separator."""


def prompt_separator(store: Store, model_id: str) -> str | None:
    """The separator that the prompts of a fine-tuned model's training file end with (e.g.
    "\\n\\n###\\n\\n"), so that a prompt without it can be pointed out; None when unknown (a base
    model, a deleted job or file, prompts without a common separator)."""
    from tunelab.data.prepare import prompt_separator as common_separator
    from tunelab.errors import TunelabError

    record = store.find_model(model_id)
    if record is None or not record.job_id:
        return None
    try:
        job = store.get_job(record.job_id)
        rows = read_prompt_completion(Path(store.get_file(job.training_file).path))
    except (TunelabError, OSError):
        return None
    if rows and rows[0].messages is not None:
        return None  # chat data: the prompt is rendered from messages, there is no separator to add
    return common_separator([row.prompt for row in rows[:SEPARATOR_ROWS]]) or None


def missing_separator(store: Store, model_id: str, prompt: str) -> str | None:
    """The separator `prompt` lacks, which the model's training prompts end with (it learnt to
    answer after it); None when the prompt has it or the separator is unknown."""
    separator = prompt_separator(store, model_id)
    return separator if separator and not prompt.endswith(separator) else None
