"""Everything `fine_tunes.create` (CLI or HTTP) checks before a job exists, reported at once."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from tunelab.data.files import load_data_file
from tunelab.data.labels import find_label, label_sort_key, preview, whitespace_variants
from tunelab.data.readers import detect_classification
from tunelab.errors import InvalidInputError, NotFoundError, TunelabError
from tunelab.models.meta import CAUSAL, ENCODER, Method, pooling_conflict
from tunelab.models.registry import ResolvedModel, resolve_model
from tunelab.models.positions import position_limit
from tunelab.models.vocabulary import tokenizer_folder, unknown_token_notice
from tunelab.store import JobRecord, Store, ids
from tunelab.store.records import QUEUED, VALIDATING
from tunelab.training import recipes
from tunelab.training.config import ClassificationOptions, Hyperparameters
from tunelab.training.plan import JobPlan


CHARS_PER_TOKEN = 4


@dataclass
class JobRequest:
    training_file: str  # path or file id
    model: str
    validation_file: str | None = None
    hyperparameters: dict | None = None
    classification: ClassificationOptions | None = None
    suffix: str | None = None
    organization_id: str = "personal"
    id_style: str = ids.LEGACY
    """Which fine-tuned id the model gets: LEGACY `ada:ft-personal-…` (legacy endpoint, CLI, Python
    API) or CURRENT `ft:<base>:<org>:<suffix>:<id>` (/v1/fine_tuning/jobs)."""


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

    uploaded: list[str] = []  # the files this request copied into the store, removed again if it is refused
    train_id, train_rows = _load(store, request.training_file, "training", problems, uploaded)
    valid_id, valid_rows = (None, None)
    if request.validation_file:
        valid_id, valid_rows = _load(store, request.validation_file, "validation", problems, uploaded)

    wants_classification = (opts.compute_classification_metrics or opts.classification_n_classes is not None
                            or opts.classification_positive_class is not None or bool(opts.classification_betas))
    if wants_classification and not request.validation_file:
        problems.append("classification flags (--compute_classification_metrics, --classification_n_classes, "
                        "--classification_positive_class, --classification_betas) need a validation file: add -v FILE")
    if opts.classification_betas and opts.classification_positive_class is None:
        problems.append("--classification_betas needs --classification_positive_class (it is for binary classification)")
    if hp is not None and hp.keep_best and not request.validation_file:
        problems.append("keep_best needs a validation file: add -v FILE (it picks the epoch that scores best on it)")
    suffix = None
    if request.suffix is not None:
        suffix = ids.normalize_suffix(request.suffix, request.id_style)
        if not suffix:
            problems.append(f"suffix {request.suffix!r} has no letters or digits to put into the model id")
        elif suffix != request.suffix:
            notices.append(f"Suffix normalised to {suffix!r} (lower case, dashes for other characters, at most "
                           f"{ids.SUFFIX_LIMITS[request.id_style]} characters) from {request.suffix!r}.")

    if train_rows is not None and valid_rows is not None:
        chat = [rows[0].messages is not None for rows in (train_rows, valid_rows)]
        if chat[0] != chat[1]:
            kinds = ["chat (messages)" if c else "prompt/completion" for c in chat]
            problems.append(f"the training file is {kinds[0]} but the validation file is {kinds[1]}; "
                            "give both in the same format")
    if train_rows is not None and valid_rows:
        overlap = _validation_overlap(train_rows, valid_rows)
        if overlap:
            notices.append(overlap)
    if hp is not None and train_rows is not None and train_rows[0].messages is not None:
        # Without the model's tokenizer here, about 4 characters a token (OpenAI's checker counts tokens).
        long = [e.line for e in train_rows
                if sum(len(m["content"]) for m in e.messages) / CHARS_PER_TOKEN > hp.max_length]
        if long:
            notices.append(f"{len(long)} chat example(s) look longer than max_length={hp.max_length} tokens (about "
                           f"{CHARS_PER_TOKEN} characters a token), e.g. line(s) {', '.join(map(str, long[:5]))}; "
                           "they lose the start of the conversation. Raise hyperparameters.max_length to keep it.")
    labels = None
    is_classification = False
    if train_rows is not None:
        completions = [e.completion for e in train_rows]
        labels = sorted(set(completions), key=label_sort_key)
        is_classification = detect_classification(completions) or (wants_classification and len(labels) <= 1000)
        if is_classification:
            problems += _whitespace_variants(request.training_file, train_rows)
        if opts.classification_positive_class is not None and labels is not None:
            if find_label(opts.classification_positive_class, labels) is None:
                problems.append(f"--classification_positive_class {opts.classification_positive_class!r} is not a "
                                f"completion in the training data ({preview(labels)})")
            elif len(labels) != 2:
                problems.append(f"--classification_positive_class is for binary data; the training data has {len(labels)} classes")

    method = hp.method if hp else "auto"
    resolved = None
    try:
        resolved = resolve_model(request.model, store, classification=is_classification, materialize=False)
    except TunelabError as exc:
        problems.append(exc.message + (f" {exc.hint}" if exc.hint else ""))
    parent_labels = _parent_labels(resolved)
    n_data_labels = len(labels) if labels is not None else 0
    if labels is not None and parent_labels is not None:
        # A classifier continues on any data whose labels are among its own (corrections from
        # feedback rarely cover every class): its head keeps every label, in its order.
        foreign = [label for label in labels if label not in parent_labels]
        if foreign:
            problems.append(f"{request.model} classifies into {preview(parent_labels)}; the training data has "
                            f"label(s) it does not have: {preview(foreign)}. Continue it on data with its labels, "
                            "or train a new model from its base model")
        else:
            labels = list(parent_labels)
    if is_classification and parent_labels is None and n_data_labels == 1:
        # One distinct completion passes the "fewer than a third" rule, but a model choosing among one
        # label always gives it (loss 0 from the first step): refused rather than trained uselessly.
        # Asked for explicitly, the lm method learns every learnt reply as free text instead.
        if hp is not None and hp.method == Method.LM:
            is_classification = False
        else:
            chat = train_rows[0].messages is not None
            problems.append(f"every training example has the same completion ({preview(labels)}), so there is "
                            "nothing to classify: a classifier needs at least two labels"
                            + (" (in chat data the label is each example's last assistant message of weight 1)"
                               if chat else "")
                            + "; add examples of the other labels, or train a causal model on every reply with "
                              "hyperparameters {\"method\": \"lm\"}")
    if labels is not None and opts.classification_n_classes is not None:
        counts = sorted({len(labels), n_data_labels})
        if opts.classification_n_classes not in counts:
            problems.append(f"--classification_n_classes {opts.classification_n_classes} does not match the "
                            f"training data, which has {counts[0]} distinct completions"
                            + (f" (the model it continues has {counts[-1]} labels)" if len(counts) > 1 else "")
                            + f": {preview(labels)}")
    if labels is not None and valid_rows is not None and is_classification:
        unseen = sorted({e.completion for e in valid_rows} - set(labels))
        if unseen:
            where = "the training file" if parent_labels is None else f"the training file or {request.model}'s labels"
            problems.append(f"the validation file has completions that never occur in {where}: {preview(unseen)}")
    if resolved is not None and hp is not None and train_rows is not None:
        parent_meta = resolved.parent_meta
        if parent_meta is not None:
            if method == "auto":
                method = parent_meta.method.value
            elif method != parent_meta.method:
                problems.append(f"{request.model} was trained with method {parent_meta.method}; "
                                "continue it with the same method")
            conflict = pooling_conflict(request.model, parent_meta.pooling, hp.pooling)
            if conflict:
                problems.append(conflict)
            if valid_rows is None:
                dropped = _unrefitted(store, request.model, resolved)
                if dropped:
                    notices.append(dropped)
        elif method == "auto":
            method = Method.CLASSIFIER.value if is_classification else Method.LM.value
            if not is_classification and resolved.kind == ENCODER:
                problems.append(f"{request.model} ({resolved.base_model}) is an encoder and can only learn classification, "
                                f"but the training data looks like free-form completions ({len(labels)} distinct "
                                f"completions in {len(train_rows)} rows); train a causal model such as smollm2-135m instead "
                                f"(-m smollm2-135m, or model \"smollm2-135m\" over HTTP)")
            else:
                notices.append(f"Method: {method} (auto: {'classification data' if is_classification else 'free-form completions'} on {resolved.base_model}).")
        if method == Method.CLASSIFIER and not is_classification and parent_meta is None:
            problems.append("method classifier needs classification data (fewer distinct completions than a third of the rows)")
        # An unknown kind (a hub id not downloaded yet) is taken at its word; the job checks it.
        if method == Method.LM and resolved.kind == ENCODER and parent_meta is None:
            problems.append(f"{request.model} is an encoder; the lm method needs a causal model such as smollm2-135m")
        if hp is not None and hp.loss == "logit_adjusted" and method != Method.CLASSIFIER:
            problems.append("loss logit_adjusted needs the classifier method (a head over the labels)")
        if hp is not None and hp.logit_adjustment and not (is_classification and valid_rows):
            problems.append("logit_adjustment tunes its strength on a validation file of classification data: "
                            "give one with -v")
    if problems:
        for file_id in uploaded:  # nothing of a refused request stays (its files were never shown to the user)
            store.delete_file(file_id)
        raise InvalidInputError("Cannot create the fine-tuning job:", problems=problems)
    if resolved.notice:
        notices.insert(0, resolved.notice)
    folder = tokenizer_folder(resolved)
    if folder is not None:
        unreadable = unknown_token_notice(resolved.base_model, folder, [e.prompt for e in train_rows])
        if unreadable:
            notices.append(unreadable)

    plan = _plan(Method.parse(method), hp, opts, resolved, labels, is_classification,
                 n_train=len(train_rows), n_valid=len(valid_rows) if valid_rows is not None else 0)
    limit = position_limit(folder) if folder is not None else None
    if limit is not None and plan.hyperparameters.max_length > limit:
        notices.append(f"max_length lowered from {plan.hyperparameters.max_length} to {limit}: {request.model} reads "
                       f"at most {limit} tokens at once (max_position_embeddings in its config.json); longer "
                       "examples are truncated to that.")
        plan.hyperparameters.max_length = limit
    plan.model_id_style = request.id_style
    hyperparams, options = plan.to_store()
    job = store.create_job(model=request.model, base_model=plan.base_model, method=plan.method.value,
                           training_file=train_id, validation_file=valid_id, hyperparams=hyperparams,
                           options=options, seed=hp.seed, parent_model=plan.parent_model,
                           suffix=suffix, organization_id=request.organization_id, status=VALIDATING)
    store.add_event(job.id, f"Created fine-tuning job: {job.id}")
    store.add_event(job.id, "Validated training file" + (" and validation file" if valid_id else "") +
                    f": {len(train_rows)}" + (f" and {len(valid_rows)}" if valid_rows is not None else "") + " examples.")
    for notice in notices:
        store.add_event(job.id, notice)
    store.add_event(job.id, plan.recipe, data={"hyperparameters": hyperparams,
                                               "auto": plan.auto_hyperparameters})
    # The files were parsed above, before the job existed, so every problem was reported at once.
    job = store.update_job(job.id, status=QUEUED)
    store.add_event(job.id, "Job enqueued. It starts as soon as the worker is free.")
    return job, notices


OVERLAP_NOTICE_SHARE = 0.2
"""A validation file sharing at least this share of its prompts with the training file gets a notice:
a few repeated reviews are normal in real data, a copied or mis-picked file is not."""


def _validation_overlap(train_rows, valid_rows) -> str | None:
    """A validation file whose prompts are largely training prompts (the same file picked twice, or
    a split made before de-duplicating) scores what the model memorised: keep_best, early stopping
    and the temperature all rest on it. Said, not refused: OpenAI accepts it too."""
    seen = {e.prompt for e in train_rows}
    shared = sum(e.prompt in seen for e in valid_rows)
    if shared < OVERLAP_NOTICE_SHARE * len(valid_rows) or not shared:
        return None
    return (f"Note: {shared} of the validation file's {len(valid_rows)} prompts ({shared / len(valid_rows):.0%}) are "
            "also in the training file, so its scores, the epoch kept on them and the calibration fitted on them "
            "will be optimistic. Validate on rows held out from training (`tunelab datasets build` splits and "
            "de-duplicates them).")


def _unrefitted(store: Store, model: str, resolved: ResolvedModel) -> str | None:
    """What continuing without a validation file gives up: the temperature and post-hoc logit
    adjustment the parent fitted on its validation file are not carried over (they are refitted on
    -v, or dropped), so the new model answers by argmax at temperature 1. None: nothing to lose."""
    meta = resolved.parent_meta
    fitted = ([f"a logit adjustment (tau {meta.logit_adjustment:.2f})"] if meta.logit_adjustment else []) + \
        ([f"temperature {meta.temperature:.3f}"] if meta.temperature != 1.0 else [])
    if not fitted:
        return None
    valid = None
    if resolved.parent.job_id:
        try:
            valid = store.get_job(resolved.parent.job_id).validation_file
        except TunelabError:
            valid = None
    again = " --logit_adjustment" if meta.logit_adjustment else ""
    return (f"Note: {model} answers with {' and '.join(fitted)}, fitted on its validation file; without a "
            f"validation file this job cannot refit {'them' if len(fitted) > 1 else 'it'}, so the new model "
            f"answers {'by argmax ' if meta.logit_adjustment else ''}at temperature 1. To keep "
            f"{'them' if len(fitted) > 1 else 'it'}, add " + (f"-v {valid}{again} (its validation file)." if valid
                                                            else f"-v VALID.jsonl{again}."))


def _parent_labels(resolved: ResolvedModel | None) -> list[str] | None:
    """The labels of the classifier being continued (None: a base model, or an lm-method parent)."""
    meta = resolved.parent_meta if resolved is not None else None
    if meta is None or meta.method != Method.CLASSIFIER or not meta.labels:
        return None
    return list(meta.labels)


def _plan(method: Method, hp: Hyperparameters, opts: ClassificationOptions, resolved: ResolvedModel,
          labels: list[str] | None, is_classification: bool, *, n_train: int, n_valid: int) -> JobPlan:
    """Every default resolved once (the "auto" recipe of training/recipes.py): what the job will
    do, as the runner and the views read it."""
    parent = resolved.parent_meta
    base_lr = parent.base_learning_rate if parent else resolved.base_learning_rate
    from tunelab.runtime import device  # torch; kept out of `import tunelab` (the notebook API)

    on_gpu = device().type != "cpu"
    if parent:
        model_batch = parent.default_batch_size
    else:
        model_batch = resolved.auto_batch_gpu if on_gpu else resolved.auto_batch_cpu
    hp.method = method.value
    recipe = recipes.resolve(hp, n_train=n_train, n_valid=n_valid, model_batch=model_batch,
                             continuing=parent is not None)
    hp = recipe.hyperparameters
    kind = resolved.kind or (CAUSAL if method == Method.LM else ENCODER)
    return JobPlan(
        method=method, base_model=resolved.base_model, kind=kind, id_prefix=resolved.id_prefix,
        hyperparameters=hp, learning_rate=base_lr * hp.learning_rate_multiplier, base_learning_rate=base_lr,
        parent_model=resolved.parent.id if resolved.parent else None,
        labels=labels if (method == Method.CLASSIFIER or is_classification) else None,
        classification=is_classification, classification_options=opts, n_train=n_train, n_valid=n_valid,
        cumulative_epochs=(resolved.parent.cumulative_epochs if resolved.parent else 0) + hp.n_epochs,
        auto_hyperparameters=recipe.auto, recipe=recipe.describe(),
    )


def _whitespace_variants(ref: str, rows) -> list[str]:
    """A problem when labels are written in two ways that differ only in whitespace (" 4" and "4"):
    the model would learn them as two classes and split each class's rows between them."""
    groups = whitespace_variants(e.completion for e in rows)
    if not groups:
        return []
    counts = Counter(e.completion for e in rows)
    rarer = {label for group in groups for label in sorted(group, key=lambda label: -counts[label])[1:]}
    lines = [e.line for e in rows if e.completion in rarer]
    shown = ", ".join(map(str, lines[:5])) + (", …" if len(lines) > 5 else "")
    return [f"training file {ref}: {len(groups)} label(s) are written in two ways that differ only in whitespace, "
            f"so each would train as two classes: {', '.join(' / '.join(map(repr, g)) for g in groups[:5])}"
            f"{', …' if len(groups) > 5 else ''} (the rarer form on {len(lines)} line(s): {shown}). Write every "
            f"label the same way, e.g. `tunelab tools fine_tunes.prepare_data -f {ref}` adds the missing leading spaces"]


def _load(store: Store, ref: str, role: str, problems: list[str], uploaded: list[str]):
    """A path is uploaded into the store (its new id goes to `uploaded`); a file id is looked up.
    Either way the rows are parsed."""
    try:
        data = load_data_file(store, ref, role, upload=True)
    except NotFoundError as exc:  # "The training file X does not exist." already names the file
        problems.append(exc.message.removeprefix("The ").rstrip("."))
        return None, None
    except TunelabError as exc:
        problems.append(f"{role} file: {exc.message}")
        problems += [f"    {p}" for p in exc.problems[:20]]
        if exc.hint:  # what to do about it: the datasets build command for raw reviews, prepare_data, ...
            problems.append(f"    {exc.hint}")
        return None, None
    if data.file_id != str(ref):
        uploaded.append(data.file_id)
    return data.file_id, data.rows
