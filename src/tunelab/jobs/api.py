"""tunelab's Python API, for notebooks: the chapter's workflow without a shell.

    import tunelab

    job = tunelab.create_job("train.jsonl", model="ada", validation_file="valid.jsonl",
                             n_epochs=1, compute_classification_metrics=True, classification_n_classes=5)
    job.wait()                          # progress bar; raises JobFailedError if it fails or is cancelled
    job.results()                       # the results CSV as a pandas DataFrame
    tunelab.evaluate(job.fine_tuned_model, "test.jsonl", train_file="train.jsonl")["accuracy"]
    tunelab.complete(job.fine_tuned_model, prompt, max_tokens=1, logprobs=5)["probabilities"]

Jobs go through the same store and background worker as `tunelab api fine_tunes.create` and
`tunelab serve`: a job created here can be followed from the CLI and called through the server.
Every function takes an optional `store` (default: the store of $TUNELAB_HOME). Errors are the
typed ones of tunelab.errors (InvalidInputError lists every problem of a request at once).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tunelab.errors import InvalidInputError, JobFailedError
from tunelab.jobs import files, follow, submit, views
from tunelab.jobs.progress import watch
from tunelab.store import JobRecord, Store
from tunelab.store.records import SUCCEEDED


class Job:
    """A fine-tuning job in the store. Attributes read the row as of the last `refresh()` (which
    `wait()` and `cancel()` do too)."""

    def __init__(self, record: JobRecord, store: Store | None = None, notices: Sequence[str] = ()):
        self.store = store or Store()
        self.record = record
        self.notices = list(notices)
        """Notes from validation (e.g. how an alias was mapped); empty for a job looked up later."""

    id = property(lambda self: self.record.id)
    legacy_id = property(lambda self: self.record.legacy_id, doc="The same job as the legacy API names it (ft-…).")
    status = property(lambda self: self.record.status, doc="validating_files, queued, running, succeeded, "
                                                           "failed or cancelled.")
    model = property(lambda self: self.record.model)
    fine_tuned_model = property(lambda self: self.record.fine_tuned_model, doc="The new model's id once it succeeded.")
    error = property(lambda self: self.record.error, doc="{code, message, param} of a failed job.")

    def refresh(self) -> Job:
        self.record = self.store.get_job(self.id)
        return self

    def wait(self, progress: bool = True, *, check: bool = True) -> Job:
        """Block until the job ends. `progress`: a progress bar and the job's events as they come.
        `check`: raise JobFailedError when it failed or was cancelled (so a notebook stops before
        evaluating a model that does not exist); with check=False, look at `status` instead.
        Interrupting (Ctrl-C, the stop button) stops the waiting, never the job."""
        self.record = submit.resume(self.store, self.id)
        try:
            if progress:
                self.record = watch(self.store, self.id)
            else:
                for _ in follow.follow(self.store, self.id):
                    pass
                self.refresh()
        except KeyboardInterrupt as exc:
            # The traceback ends in a sleep inside the event loop; it should say what became of the job.
            exc.add_note(f"Stopped waiting for job {self.legacy_id}; it goes on in the background worker. "
                         "job.wait() follows it again, job.cancel() stops it.")
            raise
        if check and self.status != SUCCEEDED:
            reason = (self.error or {}).get("message", "")
            raise JobFailedError(f"Job {self.legacy_id} {self.status}." + (f" Reason: {reason}" if reason else ""),
                                 job_id=self.id, status=self.status)
        return self

    def events(self) -> list[dict[str, Any]]:
        """Every event so far, oldest first, as /v1/fine_tuning/jobs/{id}/events shows them."""
        return [views.event_view(e) for e in self.store.list_events(self.id)]

    def results(self):
        """The results CSV (one row per step; classification columns on validation steps) as a
        pandas DataFrame. A running job's rows so far; InvalidInputError before its first step."""
        import pandas as pd

        return pd.read_csv(files.results_path(self.store, self.refresh().record))

    def cancel(self) -> Job:
        """The job is `cancelled` at once; a running one's training stops within about a second and
        registers no model (ConflictError if it has already ended)."""
        self.record = self.store.request_cancel(self.id)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The job as /v1/fine_tuning/jobs shows it (hyperparameters resolved, final metrics)."""
        return views.job_view(self.refresh().record, self.notices)

    def __repr__(self) -> str:
        model = f", fine_tuned_model={self.fine_tuned_model!r}" if self.fine_tuned_model else ""
        return f"Job(id={self.id!r}, status={self.status!r}{model})"


class EvaluationReport(dict):
    """evaluate()'s result: a plain dict (the keys of `tunelab evaluate --json`) that a notebook or
    IPython shows as the `tunelab evaluate` summary (metrics beside the baselines, per class, the
    confusion matrix) instead of a screenful of nested keys and calibration bins."""

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        from tunelab.evaluation.report import format_report

        printer.text("EvaluationReport(...)" if cycle else format_report(self))

    def _repr_html_(self) -> str:
        """Jupyter: the summary, then the plots evaluate wrote (with out_dir) inline."""
        from html import escape

        from tunelab.evaluation.report import format_report

        return f"<pre>{escape(format_report(self))}</pre>" + _images(
            self.get("files") or {}, ("confusion_matrix", "reliability", "per_class_f1"), width="32%")


class Comparison(dict):
    """compare()'s result: a plain dict that a notebook shows as its table (rendered Markdown) and
    IPython as the Markdown text, instead of the nested rows."""

    def _repr_markdown_(self) -> str:
        return self["markdown"]

    def _repr_html_(self) -> str | None:
        """Jupyter: the chart compare wrote (with out_dir) under the table; without one, the Markdown."""
        if not (self.get("files") or {}).get("chart"):
            return None  # falls back to _repr_markdown_
        from html import escape

        try:  # markdown-it-py comes with rich (typer's, transformers' CLI); not a dependency of its own
            import markdown_it

            table = markdown_it.MarkdownIt().enable("table").render(self["markdown"])
        except ImportError:
            table = f"<pre>{escape(self['markdown'])}</pre>"
        return table + _images(self["files"], ("chart",))

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text("Comparison(...)" if cycle else self["markdown"])


def create_job(training_file: str | Path, model: str = "ada", validation_file: str | Path | None = None, *,
               n_epochs: int | None = None, batch_size: int | None = None,
               learning_rate_multiplier: float | None = None, prompt_loss_weight: float | None = None,
               seed: int | None = None, compute_classification_metrics: bool = False,
               classification_n_classes: int | None = None, classification_positive_class: str | None = None,
               classification_betas: Sequence[float] | None = None, suffix: str | None = None,
               store: Store | None = None, **hyperparameters: Any) -> Job:
    """Validate, queue and start a fine-tuning job, as `tunelab api fine_tunes.create --no_follow`
    does; returns at once (`job.wait()` follows it). Files are paths (uploaded into the store) or
    file ids. `model`: a base model (minilm-l6, smollm2-135m, the ada/babbage/curie/davinci
    aliases, a local Hugging Face folder) or a fine-tuned model id to continue training. Extra
    keyword arguments are tunelab's other hyperparameters (method="lm", lora=True, class_weights,
    shuffle, max_length, ...); unknown names are an InvalidInputError naming the known ones."""
    store = store or Store()
    request = submit.job_request(
        _file(training_file, "training_file"), model, _file(validation_file, "validation_file"),
        hyperparameters=dict(n_epochs=n_epochs, batch_size=batch_size, learning_rate_multiplier=learning_rate_multiplier,
                             prompt_loss_weight=prompt_loss_weight, seed=seed, **hyperparameters),
        compute_classification_metrics=compute_classification_metrics,
        classification_n_classes=classification_n_classes,
        classification_positive_class=classification_positive_class,
        classification_betas=classification_betas, suffix=suffix)
    submission = submit.submit(store, request)
    return Job(submission.job, store, submission.notices)


def get_job(job_id: str, *, store: Store | None = None) -> Job:
    """A job by id (`ftjob-…` or the legacy `ft-…`)."""
    store = store or Store()
    return Job(store.get_job(job_id), store)


def list_jobs(*, store: Store | None = None) -> list[Job]:
    """Every job, newest first (as OpenAI lists them)."""
    store = store or Store()
    return [Job(record, store) for record in store.list_jobs()]


def evaluate(model: str, test_file: str | Path, *, train_file: str | Path | None = None,
             out_dir: str | Path | None = None, threshold: float | None = None, batch_size: int = 32,
             progress: bool = True, store: Store | None = None, decision: str = "argmax") -> dict[str, Any]:
    """`tunelab evaluate` as a dict: accuracy with its bootstrap interval, good-vs-bad and one-off
    accuracy, MAE and QWK (ordinal labels), F1 per class, calibration, perplexity; with
    `train_file`, the majority and TF-IDF baselines under "baselines". Files are paths or file
    ids. With `out_dir`, also writes metrics.json, predictions.jsonl and the plots there. Probabilities
    are calibrated by the model's temperature ("ece_uncalibrated" is the ECE before it); `decision`
    picks the rule of the headline metrics, and ordinal labels get every rule under "decision_rules"."""
    from tunelab.evaluation.report import evaluate_model

    return EvaluationReport(evaluate_model(
        model, _file(test_file, "test_file"), train_path=_file(train_file, "train_file"), out_dir=out_dir, store=store,
        batch_size=batch_size, progress=progress, threshold=threshold, decision=decision, folders=True))


def compare(models: Sequence[str] | str, test_file: str | Path, *, train_file: str | Path | None = None,
            out_dir: str | Path | None = None, threshold: float | None = None, batch_size: int = 32,
            progress: bool = True, store: Store | None = None,
            names: Mapping[str, str] | Sequence[str] | None = None) -> dict[str, Any]:
    """`tunelab compare` (the chapter's Table 4.1) as a dict: "markdown" is the table, "rows" its
    cells, "reports" each model's evaluate() result, "training" each model's epochs and cost.
    `models`: a list of model ids (one id alone is a list of one). `names`: {model id: name}, or
    one name per model in order (as `--names`), for the table's header and the chart's legend
    (default: the ids)."""
    from tunelab.evaluation.compare import compare_models

    models = [str(models)] if isinstance(models, (str, Path)) else [str(m) for m in models]
    if names is not None and not isinstance(names, Mapping):
        if isinstance(names, str) or len(names) != len(models):
            given = 1 if isinstance(names, str) else len(names)
            raise InvalidInputError(f"names gives {given} name(s) for {len(models)} model(s); give one per model, "
                                    "in order, or a dict {model id: name}.")
        names = dict(zip(models, names))
    return Comparison(compare_models(
        models, _file(test_file, "test_file"), train_path=_file(train_file, "train_file"), out_dir=out_dir, store=store,
        batch_size=batch_size, progress=progress, threshold=threshold, names=names, folders=True))


def complete(model: str, prompt: str, *, max_tokens: int = 1, logprobs: int = 5, temperature: float = 0.0,
             seed: int | None = None, store: Store | None = None) -> dict[str, Any]:
    """One completion, as Listing 4.3 calls it: "prediction", and "probabilities" as (token,
    probability) pairs, most probable first (for a classification model, the labels). The model
    is loaded for this call; for many prompts use `tunelab serve` and the openai client."""
    from tunelab.inference.completion import complete_prompt
    from tunelab.inference.predictor import load_predictor

    store = store or Store()
    _warn_missing_separator(store, model, prompt)
    predictor = load_predictor(model, store)
    return complete_prompt(predictor, prompt, max_tokens=max_tokens, logprobs=logprobs, temperature=temperature,
                           seed=seed)


class PreparedData(dict):
    """prepare_data()'s result: a plain dict (findings, applied, paths, next_command, notes) that a
    notebook shows as the report `tunelab tools fine_tunes.prepare_data -q` prints."""

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        if cycle:
            printer.text("PreparedData(...)")
            return
        lines = [f"- {finding}" for finding in self["findings"]]
        lines += [f"Applied: {action}" for action in self["applied"]]
        lines.append(f"Wrote {' and '.join(map(str, self['paths']))}" if self["paths"] else "The file is unchanged.")
        lines += [f"Next: {self['next_command']}", *self["notes"]]
        printer.text("\n".join(lines))


def _images(files: Mapping[str, str], keys: Sequence[str], width: str = "100%") -> str:
    """<img> tags holding the PNGs named by `keys` in `files` (written by evaluate/compare with
    out_dir), so that a notebook shows them where the report is, without a file browser."""
    import base64
    from html import escape

    tags = []
    for key in keys:
        path = Path(files[key]) if files.get(key) else None
        if path is not None and path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            tags.append(f'<img alt="{escape(key)}" title="{escape(str(path))}" style="max-width:{width}" '
                        f'src="data:image/png;base64,{data}">')
    return "".join(tags)


def build_dataset(source: str | Path, out_dir: str | Path, *, preset: str | None = None,
                  text_columns: Sequence[str] | None = None, label_column: str | None = None,
                  train_size: int | None = None, val_size: int | None = None, test_size: int | None = None,
                  seed: int = 42, shuffle: bool = True, separator: str = "\n\n###\n\n",
                  merge: Mapping[str, str] | str | Path | None = None, language: str | None = None,
                  model: str = "ada"):
    """`tunelab datasets build` as a call: train/valid/test JSONL and labels.json in `out_dir` from a
    raw review table (CSV, JSON lines such as Amazon's dataset_en_train.json, a folder of a published
    split) or a bundled dataset's name. `merge` is {old label: new label} or a merge-map file. Returns
    a BuildResult (paths, counts and label counts per split, notes; a notebook shows its label table);
    a note says when `model`'s tokenizer cannot read much of the text."""
    import dataclasses

    from tunelab.data.builder import build_dataset as build
    from tunelab.data.label_maps import merge_request
    from tunelab.data.readers import read_prompt_completion
    from tunelab.models.vocabulary import base_model_notice

    source = _file(source, "source")
    if merge is not None and not isinstance(merge, Mapping):
        merge = merge_request(_file(merge, "merge"))
    result = build(source, out_dir=out_dir, text_columns=text_columns, label_column=label_column, preset=preset,
                   train_size=train_size, val_size=val_size, test_size=test_size, seed=seed, shuffle=shuffle,
                   separator=separator, merge=dict(merge) if merge else None, language=language)
    unreadable = base_model_notice(model, [e.prompt for e in read_prompt_completion(result.paths["train"])])
    return dataclasses.replace(result, notes=[*result.notes, unreadable]) if unreadable else result


def prepare_data(file: str | Path, *, recommended: bool = True, split: bool = True, seed: int = 42,
                 model: str = "ada") -> PreparedData:
    """`tunelab tools fine_tunes.prepare_data` without its questions: the necessary fixes always,
    the recommended ones with `recommended`, and with `split` the stratified train/validation split
    it recommends. The result is written beside the file under a new name (never over a file);
    an unchanged file is not copied. Returns {"findings", "applied", "paths", "next_command",
    "notes"}."""
    from tunelab.data import prepare

    analysis = prepare.analyze(_file(file, "file"))
    accepted = [a for a in analysis.actions if a.necessary or recommended]
    data = prepare.apply_actions(analysis.data, accepted, analysis.path)
    plan = prepare.plan_split(data, seed=seed) if split else None
    labels = prepare.classes(data)
    replies = prepare.replies(data) if labels else None
    # A CSV or JSON file is converted even when unchanged: fine-tuning reads JSON lines.
    changed = accepted or plan is not None or analysis.format != "jsonl"
    paths = prepare.write_prepared(analysis.path, data, plan) if changed else []
    train, valid = (paths[0], paths[1] if plan is not None else None) if paths else (analysis.path, None)
    notes = ([plan.note] if plan is not None and plan.note else []) + list(prepare.usage_notes(data))
    return PreparedData(findings=[f.message for f in analysis.findings], applied=[a.message for a in accepted],
                        paths=paths, next_command=prepare.next_command(train, valid, labels, model, replies),
                        notes=notes)


def _file(value: Any, name: str) -> str | None:
    """A data file argument as a path or file id. Anything else (a pandas DataFrame, a list of
    rows) would be read as a file named by its printed form: an OSError 'File name too long'."""
    if value is None or isinstance(value, (str, os.PathLike)):
        return None if value is None else os.fspath(value)
    hint = (f" Write it to a JSON-lines file first (df.to_json('{name.removesuffix('_file')}.jsonl', orient='records', "
            "lines=True)) and pass that path." if hasattr(value, "to_json") else "")
    raise InvalidInputError(f"{name} must be a path or a file id (file-…), not a {type(value).__name__}.{hint}")


def _warn_missing_separator(store: Store, model: str, prompt: str) -> None:
    """The CLI prints this note; in a notebook a warning is the place for it (the answer to a prompt
    without the separator the model learnt to answer after is often just wrong, not an error)."""
    import warnings

    from tunelab.data.prepare import show

    separator = files.missing_separator(store, model, prompt)
    if separator:
        warnings.warn(f"{model} was trained on prompts that end with {separator!r} ({show(separator)}), and this "
                      f"prompt does not, so its answer may be off: add the separator to the prompt's end.",
                      UserWarning, stacklevel=3)
