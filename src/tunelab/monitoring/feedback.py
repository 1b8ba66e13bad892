"""Feedback: the labels people give for served predictions, and the way back to training.

- `add_feedback`: one label for a logged prediction (by its response id and prompt index) or for
  a text (with the model named). The label must be one of the model's (matched as everywhere:
  "4" names " 4"). Feedback goes to its own table and never changes the logged prediction; the
  latest feedback on a prediction is the one that counts. The prompt is copied into the feedback
  row, so training data survives the log's retention.
- `import_feedback`: a CSV/TSV/XLSX/JSON/JSONL file of such labels, checked whole first: any bad
  row is reported with its line and nothing is written; a row its source already said is skipped,
  so importing a cumulative file again changes nothing.
- `review_queue`: logged predictions nobody labelled yet, most uncertain first.
- `export_feedback`: chapter-format prompt/completion JSONL for continued training.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tunelab.data.labels import match_label, preview, sort_labels
from tunelab.data.readers import raise_problems, read_table
from tunelab.errors import InvalidInputError, NotFoundError
from tunelab.fsutil import output_dir, write_json, write_jsonl
from tunelab.monitoring.reference import model_data
from tunelab.store.predictions import FeedbackRecord, PredictionLog, PredictionRecord

DEFAULT_SOURCE = "human"
MAX_LABEL_CHARS = 10_000
ID_COLUMNS = ("id", "response_id")
TEXT_COLUMNS = ("text", "prompt")


@dataclass
class FeedbackResult:
    feedback: FeedbackRecord
    prediction: PredictionRecord | None  # the logged prediction it is about (None for a text)

    @property
    def correct(self) -> bool | None:
        if self.prediction is None or self.prediction.prediction is None:
            return None
        return self.prediction.prediction == self.feedback.label


def _labels_of(store, model_id: str, cache: dict[str, list[str] | None]) -> list[str] | None:
    if model_id not in cache:
        cache[model_id] = model_data(store, model_id).labels
    return cache[model_id]


def _label(name: Any, labels: list[str] | None, model_id: str) -> str:
    """The model's label that `name` stands for; for a free-form model, the text as given."""
    if name is None or (isinstance(name, str) and not name.strip()):
        raise InvalidInputError("The label is empty.")
    name = str(name)
    if len(name) > MAX_LABEL_CHARS:
        raise InvalidInputError(f"The label is {len(name)} characters long; at most {MAX_LABEL_CHARS} are allowed.")
    if not labels:
        return name
    try:
        return match_label(name, labels)
    except InvalidInputError:
        raise InvalidInputError(f"{name!r} is not a label of {model_id}; its labels are {preview(labels, 40)}.",
                                hint=f"Labels are matched ignoring surrounding spaces, so {labels[0].strip()!r} "
                                     f"names {labels[0]!r}.") from None


def _check(store, log: PredictionLog, item: dict, labels_cache: dict, flush: Callable[[], Any] | None) \
        -> tuple[dict, PredictionRecord | None]:
    """A feedback row ready to insert, and the prediction it is about; typed errors otherwise."""
    response_id = item.get("response_id") or None
    model = item.get("model") or None
    text = item.get("prompt")
    index = item.get("prompt_index")
    prediction = None
    if response_id is not None:
        if text not in (None, ""):
            raise InvalidInputError("Give either the id of a logged prediction or a text, not both.")
        try:
            index = int(index or 0)
        except (TypeError, ValueError):
            raise InvalidInputError(f"The index must be a whole number, got {index!r}.") from None
        if index < 0:
            raise InvalidInputError(f"The index must be 0 or more, got {index}.")
        prediction = log.get(response_id, index)
        if prediction is None and flush is not None:
            flush()  # it may have been answered a moment ago and still be queued for the log
            prediction = log.get(response_id, index)
        if prediction is None:
            raise NotFoundError(f"No logged prediction {response_id}" + (f" (index {index})" if index else "") + ".",
                                hint="Feedback refers to the `id` of a response from a fine-tuned model served "
                                     "with the prediction log on (and to its prompt's index).")
        if model is not None and model != prediction.model:
            raise InvalidInputError(f"{response_id} was answered by {prediction.model}, not {model}.")
        model, text = prediction.model, prediction.prompt
    else:
        if model is None or text in (None, ""):
            raise InvalidInputError("Give the id of a logged prediction, or a model and the text the label is for.")
        if not isinstance(text, str):
            raise InvalidInputError("The text must be a string.")
        index = None
    labels = _labels_of(store, model, labels_cache)
    label = _label(item.get("label"), labels, model)
    source = str(item.get("source") or DEFAULT_SOURCE).strip() or DEFAULT_SOURCE
    row = {"model": model, "response_id": response_id, "prompt_index": index, "prompt": text, "label": label,
           "source": source, "api_key_id": item.get("api_key_id"), "end_user": item.get("end_user"),
           "metadata": item.get("metadata"), "created_at": item.get("created_at")}
    return row, prediction


def add_feedback(store, *, label: str, response_id: str | None = None, index: int | None = 0,
                 model: str | None = None, text: str | None = None, source: str | None = None,
                 api_key_id: str | None = None, end_user: str | None = None, metadata: dict | None = None,
                 flush: Callable[[], Any] | None = None) -> FeedbackResult:
    """Record one label. NotFoundError for an unknown response id or model; InvalidInputError for a
    label the model does not have (or a request that names neither a prediction nor a text).
    `flush`: called once before a response id is declared unknown (the server's log writer)."""
    log = PredictionLog(store)
    row, prediction = _check(store, log, {"response_id": response_id, "prompt_index": index, "model": model,
                                          "prompt": text, "label": label, "source": source,
                                          "api_key_id": api_key_id, "end_user": end_user, "metadata": metadata},
                             {}, flush)
    (record,) = log.add_feedback([row])
    return FeedbackResult(record, prediction)


@dataclass
class ImportResult:
    records: list[FeedbackRecord]  # the rows written
    already_recorded: int = 0  # rows skipped: their source's latest label for that prediction or text
    superseded: int = 0  # rows skipped: a later line gives the same source's label for the same thing


def _subject(row: dict) -> tuple:
    """What a feedback row is about: a logged prediction, or a text of a model."""
    if row.get("response_id"):
        return ("id", row["response_id"], int(row.get("prompt_index") or 0))
    return ("text", row["model"], row["prompt"])


def import_feedback(store, path: str | Path, *, model: str | None = None, source: str | None = None) \
        -> ImportResult:
    """Labels from a file: columns `label` and either `id` (or `response_id`, with an optional
    `index`) or `text` (or `prompt`) with `model` (a column, or `model` here); optional `source`.
    Every row is checked first; any problem raises DataFileError listing them by line, and then
    nothing is written.

    Only a source's last line about a prediction (or text) counts, and it is skipped when it says
    what that source's latest label already says: the latest label counts, so importing a team's
    cumulative file again would otherwise put its old labels back over the corrections others made
    since, and add a copy of every row each time."""
    table = read_table(path, default_format="jsonl")
    if not table.rows:
        raise InvalidInputError(f"{path} has no rows.")
    log = PredictionLog(store)
    labels_cache: dict = {}
    rows, problems = [], []
    columns = set(table.columns)
    if "label" not in columns:
        raise InvalidInputError(f"{path} has no `label` column (it has: {', '.join(table.columns) or 'none'}).",
                                hint="Columns: label, and id (with index) or text (with model); source optional.")
    for raw, line in zip(table.rows, table.lines):
        item = {
            "response_id": _first(raw, ID_COLUMNS), "prompt_index": raw.get("index"),
            "prompt": _first(raw, TEXT_COLUMNS), "model": raw.get("model") or model, "label": raw.get("label"),
            "source": raw.get("source") or source or "import",
        }
        if item["response_id"] is None and item["prompt"] is not None and not item["model"]:
            problems.append(f"{table.path}:{line}: a row with a text needs a model (a `model` column, or -m MODEL)")
            continue
        try:
            row, _ = _check(store, log, item, labels_cache, None)
        except (InvalidInputError, NotFoundError) as exc:
            problems.append(f"{table.path}:{line}: {exc.message}")
            continue
        rows.append(row)
    if problems:
        raise_problems(f"{table.path}: {len(problems)} of {len(table.rows)} row(s) cannot be imported; "
                       "nothing was written:", problems)
    said: dict[tuple, str] = {}  # (subject, source) -> that source's latest label
    for existing in sorted({r["model"] for r in rows}):
        for record in log.feedback(existing):  # oldest first
            said[(_subject(record.__dict__), record.source)] = record.label
    last = {(_subject(row), row["source"]): i for i, row in enumerate(rows)}
    superseded = len(rows) - len(last)  # a later line of the file gives the same source's label
    fresh = [row for i, row in enumerate(rows) if last[(_subject(row), row["source"])] == i
             and said.get((_subject(row), row["source"])) != row["label"]]
    return ImportResult(log.add_feedback(fresh), len(rows) - superseded - len(fresh), superseded)


def _first(row: dict, keys: Sequence[str]):
    for key in keys:
        value = row.get(key)
        if value not in (None, ""):
            return str(value) if not isinstance(value, str) else value
    return None


def review_queue(store, model: str, *, limit: int = 20, since: float | None = None) -> list[PredictionRecord]:
    """Logged predictions of `model` without feedback, smallest top-1/top-2 margin first."""
    data = model_data(store, model)  # NotFoundError for an unknown model
    if not data.labels:
        raise InvalidInputError(f"{model} is not a classification model; the review queue orders predictions by "
                                "the margin between the two most probable labels.")
    if limit < 1:
        raise InvalidInputError(f"--limit must be at least 1, got {limit}.")
    return PredictionLog(store).unreviewed(model, limit=limit, since=since)


# --- back to training ---------------------------------------------------------------------------


@dataclass
class ExportResult:
    out_dir: Path
    files: dict[str, Path]
    counts: dict[str, int]
    separator: str
    labels: list[str]
    label_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    stratified: bool = True
    notes: list[str] = field(default_factory=list)


def export_feedback(store, model: str, out_dir: str | Path, *, holdout: float = 0.2, seed: int = 42,
                    corrections_only: bool = False, since: float | None = None) -> ExportResult:
    """Write the labelled examples of `model` as chapter-format training data:

    - `train.jsonl` and `heldout.jsonl`: {"prompt": text + the model's separator, "completion":
      the model's label exactly as written (" 4")}, one example per distinct text (the latest
      label wins when people disagreed), `holdout` of them held out, stratified by label when
      every label has two examples or more;
    - `provenance.json`: where every example came from (feedback ids, response ids, sources, the
      prediction it corrected) and what was left out (no text kept, duplicates, conflicts).

    `corrections_only`: only examples whose label differs from what the model had predicted."""
    if not 0 <= holdout < 1:
        raise InvalidInputError(f"--holdout must be at least 0 and below 1, got {holdout}.")
    data = model_data(store, model)
    log = PredictionLog(store)
    feedback = log.feedback(model, since=since)
    if not feedback:
        raise InvalidInputError(f"No feedback for {model} yet.",
                                hint="Add labels with POST /v1/feedback, `tunelab feedback add` or `feedback import`.")
    separator = data.separator() or _common_separator([f.prompt for f in feedback if f.prompt])
    latest: dict[Any, FeedbackRecord] = {}
    for record in feedback:  # oldest first: later feedback on the same prediction replaces earlier
        key = (record.response_id, record.prompt_index) if record.response_id else ("text", record.id)
        latest[key] = record

    skipped = Counter()
    examples: dict[str, dict] = {}
    for record in sorted(latest.values(), key=lambda r: (r.created_at, r.id)):
        if not record.prompt:
            skipped["no_text"] += 1  # logged with store: false or --no-log-text
            continue
        predicted = None
        if record.response_id:
            logged = log.get(record.response_id, int(record.prompt_index or 0))
            predicted = logged.prediction if logged else None
        corrected = predicted is not None and predicted != record.label
        if corrections_only and not corrected:
            skipped["not_a_correction"] += 1
            continue
        prompt = _with_separator(record.prompt, separator)
        key = prompt.strip()
        entry = {"prompt": prompt, "completion": record.label, "feedback_id": record.id,
                 "response_id": record.response_id, "index": record.prompt_index, "source": record.source,
                 "predicted": predicted, "corrected": corrected,
                 "labelled_at": _iso(record.created_at), "replaces": []}
        if key in examples:
            previous = examples[key]
            skipped["duplicate_text"] += 1
            if previous["completion"] != record.label:
                skipped["conflicting_labels"] += 1
            entry["replaces"] = previous["replaces"] + [previous["feedback_id"]]
        examples[key] = entry
    rows = list(examples.values())
    if len(rows) < 2:
        raise InvalidInputError(f"{len(rows)} usable labelled example(s) for {model}; at least 2 are needed.",
                                problems=[f"{k.replace('_', ' ')}: {v}" for k, v in sorted(skipped.items())])

    train, held, stratified, note = _split(rows, holdout, seed)
    out = output_dir(out_dir)
    files = {"train": out / "train.jsonl"}
    # provenance.json, written last, vouches for the files; an earlier export's goes first (and its
    # heldout.jsonl, which this export may not write), so a kill midway leaves no stale pair.
    for stale in ("provenance.json", "heldout.jsonl"):
        (out / stale).unlink(missing_ok=True)
    write_jsonl(files["train"], ({"prompt": r["prompt"], "completion": r["completion"]} for r in train))
    if held:
        files["heldout"] = out / "heldout.jsonl"
        write_jsonl(files["heldout"], ({"prompt": r["prompt"], "completion": r["completion"]} for r in held))
    labels = data.labels or sort_labels({r["completion"] for r in rows})
    label_counts = {part: dict(Counter(r["completion"] for r in rs)) for part, rs in (("train", train),
                                                                                       ("heldout", held))}
    counts = {"feedback": len(feedback), "examples": len(rows), "train": len(train), "heldout": len(held),
              "corrections": sum(r["corrected"] for r in rows),
              "confirmations": sum(r["predicted"] is not None and not r["corrected"] for r in rows),
              **{f"skipped_{k}": v for k, v in sorted(skipped.items())}}
    files["provenance"] = out / "provenance.json"
    notes = [note] if note else []
    write_json(files["provenance"], {
        "object": "tunelab.feedback_export", "model": model, "created_at": _iso(time.time()),
        "separator": separator, "labels": labels, "holdout": holdout, "seed": seed, "stratified": stratified,
        "corrections_only": corrections_only, "counts": counts, "label_counts": label_counts, "notes": notes,
        "files": {k: v.name for k, v in files.items()},
        "examples": [{"split": part, "line": i + 1, **{k: v for k, v in r.items() if k != "prompt"}}
                     for part, rs in (("train", train), ("heldout", held)) for i, r in enumerate(rs)],
    })
    return ExportResult(out, files, counts, separator, labels, label_counts, stratified, notes)


def _with_separator(prompt: str, separator: str) -> str:
    """The prompt in the model's format: the text, stripped, then the separator (as the dataset
    builder writes prompts); a prompt that already ends with it is kept as it is."""
    if not separator or prompt.endswith(separator):
        return prompt
    return prompt.strip() + separator


def _common_separator(prompts: list[str]) -> str:
    from tunelab.data.prepare import prompt_separator

    return prompt_separator(prompts)


def _split(rows: list[dict], holdout: float, seed: int) -> tuple[list[dict], list[dict], bool, str | None]:
    if holdout == 0:
        return rows, [], False, None
    from sklearn.model_selection import train_test_split

    n_held = max(1, int(round(len(rows) * holdout)))
    if n_held >= len(rows):
        raise InvalidInputError(f"{len(rows)} examples are too few to hold {holdout:.0%} out.")
    counts = Counter(r["completion"] for r in rows)
    stratify = [r["completion"] for r in rows]
    note = None
    if min(counts.values()) < 2 or n_held < len(counts) or len(rows) - n_held < len(counts):
        stratify, note = None, "too few examples of some label to stratify, so the held-out part is random"
    train, held = train_test_split(rows, test_size=n_held, random_state=seed, stratify=stratify)
    return train, held, stratify is not None, note


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
