"""Everything `fine_tunes.create` (CLI or HTTP) checks before a job exists, reported at once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunelab.data.labels import label_sort_key, preview
from tunelab.data.readers import detect_classification, read_prompt_completion
from tunelab.errors import InvalidInputError, TunelabError
from tunelab.models.registry import CAUSAL, resolve_model
from tunelab.store import JobRecord, Store
from tunelab.store.ids import is_valid_id
from tunelab.store.records import QUEUED, VALIDATING
from tunelab.training.config import ClassificationOptions, Hyperparameters


@dataclass
class JobRequest:
    training_file: str  # path or file id
    model: str
    validation_file: str | None = None
    hyperparameters: dict | None = None
    classification: ClassificationOptions | None = None
    suffix: str | None = None
    organization_id: str = "personal"


def create_job(store: Store, request: JobRequest) -> tuple[JobRecord, list[str]]:
    """Validate, upload paths as files, and queue the job. Returns the job and notices to show."""
    problems: list[str] = []
    notices: list[str] = []
    opts = request.classification or ClassificationOptions()
    hp = None
    try:
        hp = Hyperparameters.from_dict(dict(request.hyperparameters or {}))
    except InvalidInputError as exc:
        problems += exc.problems or [exc.message]

    train_id, train_rows = _load(store, request.training_file, "training", problems)
    valid_id, valid_rows = (None, None)
    if request.validation_file:
        valid_id, valid_rows = _load(store, request.validation_file, "validation", problems)

    wants_classification = (opts.compute_classification_metrics or opts.classification_n_classes is not None
                            or opts.classification_positive_class is not None or bool(opts.classification_betas))
    if wants_classification and not request.validation_file:
        problems.append("classification flags (--compute_classification_metrics, --classification_n_classes, "
                        "--classification_positive_class, --classification_betas) need a validation file: add -v FILE")
    if opts.classification_betas and opts.classification_positive_class is None:
        problems.append("--classification_betas needs --classification_positive_class (it is for binary classification)")
    if request.suffix is not None and not (0 < len(request.suffix) <= 40 and request.suffix.replace("-", "").replace("_", "").isalnum()):
        problems.append(f"suffix must be 1-40 letters, digits, - or _, got {request.suffix!r}")

    labels = None
    is_classification = False
    if train_rows is not None:
        completions = [e.completion for e in train_rows]
        labels = sorted(set(completions), key=label_sort_key)
        is_classification = detect_classification(completions) or (wants_classification and len(labels) <= 1000)
        if opts.classification_n_classes is not None:
            if opts.classification_n_classes != len(labels):
                problems.append(f"--classification_n_classes {opts.classification_n_classes} does not match the "
                                f"training data, which has {len(labels)} distinct completions: "
                                f"{preview(labels)}")
        if opts.classification_positive_class is not None and labels is not None:
            names = {l.strip() for l in labels}
            if opts.classification_positive_class.strip() not in names:
                problems.append(f"--classification_positive_class {opts.classification_positive_class!r} is not a "
                                f"completion in the training data ({preview(labels)})")
            elif len(labels) != 2:
                problems.append(f"--classification_positive_class is for binary data; the training data has {len(labels)} classes")
        if valid_rows is not None and is_classification:
            unseen = sorted({e.completion for e in valid_rows} - set(labels))
            if unseen:
                problems.append(f"the validation file has completions that never occur in the training file: {preview(unseen)}")

    method = hp.method if hp else "auto"
    resolved = None
    try:
        resolved = resolve_model(request.model, store, classification=is_classification, materialize=False)
    except TunelabError as exc:
        problems.append(exc.message + (f" {exc.hint}" if exc.hint else ""))
    if resolved is not None and hp is not None and train_rows is not None:
        if resolved.parent is not None:
            parent_method = resolved.parent.method
            if method == "auto":
                method = parent_method
            elif method != parent_method:
                problems.append(f"{request.model} was trained with method {parent_method}; continue it with the same method")
        elif method == "auto":
            method = "classifier" if is_classification else "lm"
            if not is_classification and resolved.kind != CAUSAL:
                problems.append(f"{request.model} ({resolved.base_model}) is an encoder and can only learn classification, "
                                f"but the training data looks like free-form completions ({len(labels)} distinct "
                                f"completions in {len(train_rows)} rows); use -m smollm2-135m")
            else:
                notices.append(f"Method: {method} (auto: {'classification data' if is_classification else 'free-form completions'} on {resolved.base_model}).")
        if method == "classifier" and not is_classification and resolved.parent is None:
            problems.append("method classifier needs classification data (fewer distinct completions than a third of the rows)")
        if method == "lm" and resolved.kind != CAUSAL and resolved.parent is None:
            problems.append(f"{request.model} is an encoder; the lm method needs a causal model such as smollm2-135m")
    if problems:
        raise InvalidInputError("Cannot create the fine-tuning job:", problems=problems)
    if resolved.notice:
        notices.insert(0, resolved.notice)

    hp.method = method
    parent = resolved.parent
    options = opts.to_dict()
    options.update(labels=labels if (method == "classifier" or is_classification) else None,
                   classification=is_classification, kind=resolved.kind, id_prefix=resolved.id_prefix,
                   base_learning_rate=resolved.base_learning_rate, default_batch_size=resolved.default_batch_size,
                   n_train=len(train_rows), n_valid=len(valid_rows) if valid_rows is not None else 0,
                   cumulative_epochs=(parent.cumulative_epochs if parent else 0) + hp.n_epochs)
    if parent is not None:
        options.update(base_learning_rate=parent.meta.get("base_learning_rate", resolved.base_learning_rate),
                       default_batch_size=parent.meta.get("default_batch_size", resolved.default_batch_size))
    job = store.create_job(model=request.model, base_model=resolved.base_model, method=method,
                           training_file=train_id, validation_file=valid_id, hyperparams=hp.to_dict(),
                           options=options, seed=hp.seed, parent_model=parent.id if parent else None,
                           suffix=request.suffix, organization_id=request.organization_id, status=VALIDATING)
    store.add_event(job.id, f"Created fine-tuning job: {job.id}")
    store.add_event(job.id, "Validated training file" + (" and validation file" if valid_id else "") +
                    f": {len(train_rows)}" + (f" and {len(valid_rows)}" if valid_rows is not None else "") + " examples.")
    for notice in notices:
        store.add_event(job.id, notice)
    # The files were parsed above, before the job existed, so every problem was reported at once.
    job = store.update_job(job.id, status=QUEUED)
    store.add_event(job.id, "Job enqueued. It starts as soon as the worker is free.")
    return job, notices


def _load(store: Store, ref: str, role: str, problems: list[str]):
    """A path is uploaded into the store; a file id is looked up. Either way the rows are parsed."""
    try:
        if is_valid_id(ref, "file"):
            record = store.get_file(ref)
            rows = read_prompt_completion(record.path)
            return record.id, rows
        path = Path(ref).expanduser()
        if not path.exists():
            problems.append(f"{role} file {ref} does not exist")
            return None, None
        rows = read_prompt_completion(path)
        if not rows:
            problems.append(f"{role} file {ref} has no examples")
            return None, None
        record = store.add_file(path, purpose="fine-tune", n_rows=len(rows))
        return record.id, rows
    except TunelabError as exc:
        problems.append(f"{role} file: {exc.message}")
        problems += [f"    {p}" for p in exc.problems[:20]]
        return None, None
