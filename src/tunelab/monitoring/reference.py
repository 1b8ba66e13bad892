"""What a served model is compared with: its own data.

- the training file of the job that made the model: its prompts are the reference of text drift,
  its labels the training distribution, its prompts' common ending the model's separator;
- the reference file, scored once by the model: its validation file (held out, so its confidence
  is what serving should look like), else its training file; `--reference FILE` overrides. The
  predicted-label counts, top-1 probabilities, accuracy against the file's labels and the
  label-free estimate on it are cached in $TUNELAB_HOME/monitoring/<model>/, keyed by the file's
  content hash, so only the first `tunelab monitor` of a model pays for the scoring.

The probabilities are the model's served ones: the predictor applies the model's temperature
(tunelab.inference.calibration) when it has one, so the reference is as calibrated as the log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tunelab.data.files import resolve_path
from tunelab.data.labels import find_label
from tunelab.data.prepare import prompt_separator
from tunelab.data.readers import Example, read_prompt_completion
from tunelab.errors import InvalidInputError, NotFoundError
from tunelab.fsutil import write_json
from tunelab.models.chat import TEMPLATE, example_prompt
from tunelab.monitoring import stats as S
from tunelab.store import ids

MAX_REFERENCE_ROWS = 2000
MAX_TEXT_REFERENCE = 5000
CACHE_VERSION = 1
SEED = 0


@dataclass
class ModelData:
    """The files a model was trained on (paths on this machine; None when unknown)."""

    model: str
    labels: list[str] | None
    training_path: Path | None
    validation_path: Path | None
    temperature: float = 1.0
    max_length: int | None = None
    chat_format: str | None = None
    """How a model trained on chat data reads messages (tunelab.models.chat); None otherwise."""
    path: Path | None = None
    """The model's folder (its tokenizer renders chat rows with its template)."""

    def training_rows(self) -> list[Example]:
        return read_prompt_completion(self.training_path) if self.training_path else []

    def separator(self) -> str:
        """The separator the model's training prompts end with ("" when unknown or none)."""
        if self.chat_format == TEMPLATE:
            return ""  # its prompts are rendered by its chat template, not written with a separator
        rows = self.training_rows()
        return prompt_separator([r.prompt for r in rows]) if rows else ""


def model_data(store, model_id: str) -> ModelData:
    """The model's labels, temperature and the files of the job that trained it."""
    record = store.get_model(model_id)
    meta = record.meta or {}
    training = validation = None
    if record.job_id:
        try:
            job = store.get_job(record.job_id)
        except NotFoundError:
            job = None
        if job is not None:
            training = _existing(store, job.training_file)
            validation = _existing(store, job.validation_file) if job.validation_file else None
    return ModelData(model=model_id, labels=list(record.labels) if record.labels else None, training_path=training,
                     validation_path=validation, temperature=float(meta.get("temperature") or 1.0),
                     max_length=meta.get("max_length"), chat_format=meta.get("chat_format"), path=Path(record.path))


def prompts_of(data: ModelData, rows: list[Example]) -> list[str]:
    """The rows' prompts as the model reads them: chat rows rendered with the model's chat template
    when it learnt them so (otherwise a chat row's prompt is already its transcript)."""
    if data.chat_format != TEMPLATE or not any(r.messages is not None for r in rows):
        return [r.prompt for r in rows]
    from tunelab.models.loading import load_tokenizer

    tokenizer = load_tokenizer(data.path)
    return [example_prompt(r, tokenizer, TEMPLATE) for r in rows]


def _existing(store, ref: str | None) -> Path | None:
    if not ref:
        return None
    try:
        return resolve_path(store, ref)[0]
    except NotFoundError:
        return None  # the job's file was deleted: no reference from it


@dataclass
class Reference:
    """The model on its own data; see the module docstring."""

    model: str
    labels: list[str]
    source: str  # "validation file", "training file" or "given file"
    path: str
    sha256: str
    n: int
    predicted_counts: list[int]
    top1: list[float]
    expected: dict
    accuracy: float | None  # against the reference file's own labels
    gold_counts: list[int] | None
    training_counts: list[int] | None
    temperature: float = 1.0
    texts: list[str] = field(default_factory=list, repr=False)  # training prompts (not cached)
    separator: str = ""
    cached: bool = False

    def summary(self) -> dict:
        out = {k: v for k, v in asdict(self).items() if k not in ("texts", "top1")}
        out["mean_top1"] = float(np.mean(self.top1)) if self.top1 else None
        out["n_texts"] = len(self.texts)
        return out


def load_reference(store, model_id: str, *, reference_file: str | Path | None = None,
                   scorer: Callable[[list[str]], np.ndarray] | None = None,
                   on_scoring: Callable[[int, Path], None] | None = None) -> Reference:
    """The model's reference (scored once, then read from the cache). `scorer(prompts)` returns
    label probabilities [rows, labels]; by default the model itself scores (loaded on demand).
    `on_scoring(n, path)` is called before a scoring that is not cached (for a progress note)."""
    data = model_data(store, model_id)
    if not data.labels:
        raise InvalidInputError(f"{model_id} is not a classification model: it has no labels to monitor.")
    labels = data.labels
    if reference_file is not None:
        path, source = resolve_path(store, reference_file, "reference")[0], "given file"
    elif data.validation_path is not None:
        path, source = data.validation_path, "validation file"
    elif data.training_path is not None:
        path, source = data.training_path, "training file"
    else:
        raise NotFoundError(
            f"{model_id} has no training or validation file in the store to compare the served predictions with.",
            hint="Give one with --reference FILE (prompt/completion JSONL with the model's labels).")
    training = data.training_rows() or read_prompt_completion(path)
    texts = prompts_of(data, _sample(training, MAX_TEXT_REFERENCE))
    separator = "" if data.chat_format == TEMPLATE else prompt_separator([r.prompt for r in training])
    training_counts = _gold_counts(training, labels)

    sha = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    cache = store.home / "monitoring" / ids.model_dir_name(model_id) / f"reference-{sha[:16]}.json"
    if cache.exists():
        try:
            cached = json.loads(cache.read_text(encoding="utf-8"))
            if cached.get("version") == CACHE_VERSION and cached.get("temperature") == data.temperature:
                fields = {k: v for k, v in cached.items() if k in Reference.__dataclass_fields__}
                return Reference(**{**fields, "texts": texts, "separator": separator, "cached": True,
                                    "training_counts": training_counts})
        except (OSError, ValueError, TypeError):
            pass  # a damaged cache is computed again
    rows = _sample(read_prompt_completion(path), MAX_REFERENCE_ROWS)
    if on_scoring is not None:
        on_scoring(len(rows), Path(path))
    probs = (scorer or _model_scorer(store, model_id))(prompts_of(data, rows))
    probs = S.normalise(probs)
    top1, _ = S.top1_and_margin(probs)
    pred = [labels[i] for i in probs.argmax(axis=1)]
    gold = [find_label(r.completion, labels) for r in rows]
    known = [(p, g) for p, g in zip(pred, gold) if g is not None]
    reference = Reference(
        model=model_id, labels=labels, source=source, path=str(path), sha256=sha, n=len(rows),
        predicted_counts=S.label_counts(pred, labels).tolist(), top1=[float(v) for v in top1],
        expected=S.expected_performance(probs, labels),
        accuracy=float(np.mean([p == g for p, g in known])) if known else None,
        gold_counts=_gold_counts(rows, labels), training_counts=training_counts, temperature=data.temperature,
        texts=texts, separator=separator)
    write_json(cache, {"version": CACHE_VERSION, **{k: v for k, v in asdict(reference).items()
                                                      if k not in ("texts", "separator", "cached", "training_counts")}})
    return reference


def _model_scorer(store, model_id: str) -> Callable[[list[str]], np.ndarray]:
    def score(prompts: list[str]) -> np.ndarray:
        from tunelab.inference.predictor import load_predictor

        predictor = load_predictor(model_id, store)
        return np.exp(np.asarray(predictor.score_labels(prompts), dtype=np.float64))

    return score


def _sample(rows: Sequence, n: int) -> list:
    if len(rows) <= n:
        return list(rows)
    idx = np.sort(np.random.default_rng(SEED).choice(len(rows), n, replace=False))
    return [rows[i] for i in idx]


def _gold_counts(rows: Sequence[Example], labels: Sequence[str]) -> list[int] | None:
    gold = [find_label(r.completion, labels) for r in rows]
    if not gold or any(g is None for g in gold):
        return None  # a file of another label set
    return S.label_counts(gold, labels).tolist()
