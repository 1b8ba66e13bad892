"""`tunelab api fine_tunes.*` and `files.*`: the legacy `openai api` verbs, same flags."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from tunelab.cli.common import add_command, clip, format_columns, print_json, require_paths
from tunelab.data.files import resolve_path
from tunelab.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, InvalidInputError, NotFoundError
from tunelab.jobs import submit, views
from tunelab.jobs.files import results_path, upload_file
from tunelab.jobs.follow import follow
from tunelab.jobs.progress import event_line, watch
from tunelab.jobs.views import drop_none
from tunelab.store import Store
from tunelab.store.store import MODEL_META_FILE
from tunelab.store.records import FAILED, SUCCEEDED
from tunelab.training.plan import JobPlan, JobStats


AUTO = "auto, resolved from the model and the data and shown in the job"


def hyperparameter_default(name: str) -> str:
    """The default of a hyperparameter as the help shows it, read from training.config so that the
    help stays true when a default changes; None or "auto" is resolved per job."""
    from dataclasses import MISSING, fields

    from tunelab.training.config import Hyperparameters

    field = next(f for f in fields(Hyperparameters) if f.name == name)
    value = field.default if field.default is not MISSING else None
    if value is None or value == "auto":
        return AUTO
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def register(sub) -> None:
    from tunelab.training.config import POOLINGS  # (lazy, like d(): the CLI starts without it)

    api = sub.add_parser("api", help="Fine-tuning jobs and files (the legacy `openai api` verbs).",
                         description="Fine-tuning jobs and files (the legacy `openai api` verbs).")
    verbs = api.add_subparsers(dest="verb", metavar="VERB")
    d = hyperparameter_default

    p = add_command(verbs, "fine_tunes.create", cmd_create, "Create a fine-tuning job and follow it to its end.")
    p.add_argument("-t", "--training_file", required=True, metavar="FILE",
                   help="Training data: a JSONL file of prompt/completion rows (uploaded into the store) or a "
                        "file id (file-…).")
    p.add_argument("-v", "--validation_file", metavar="FILE",
                   help="Validation data, as for -t (default: none; --compute_classification_metrics needs it).")
    p.add_argument("-m", "--model", default="ada",
                   help="Base model (minilm-l6, smollm2-135m, ada/babbage/curie/davinci aliases, a local "
                        "Hugging Face folder, a hub id) or a fine-tuned model id to continue (default: ada).")
    p.add_argument("--n_epochs", type=str, default=None, metavar="N",
                   help=f"Passes over the training file (default: {d('n_epochs')}).")
    p.add_argument("--batch_size", type=str, default=None, metavar="N",
                   help=f"Examples per training step (default: {d('batch_size')}).")
    p.add_argument("--learning_rate_multiplier", type=str, default=None, metavar="X",
                   help=f"Multiplies the base model's own learning rate (default: {d('learning_rate_multiplier')}).")
    p.add_argument("--prompt_loss_weight", type=str, default=None, metavar="W",
                   help="For the lm method: weight of the prompt tokens in the loss, 0 to 1 "
                        f"(default: {d('prompt_loss_weight')}; OpenAI's was 0.01).")
    p.add_argument("--compute_classification_metrics", action="store_true",
                   help="Score every label on the validation file at each evaluation, adding accuracy and "
                        "weighted F1 to the results CSV (needs -v; default: off).")
    p.add_argument("--classification_n_classes", type=str, metavar="N",
                   help="Number of classes; the job fails validation if the data has another number "
                        "(default: not checked).")
    p.add_argument("--classification_positive_class", metavar="LABEL",
                   help="Binary classification: the positive class, for precision, recall and AUROC "
                        "(default: none).")
    p.add_argument("--classification_betas", type=str, nargs="+", default=[], metavar="BETA",
                   help="Binary classification: also report the F-beta score for each BETA (default: none).")
    p.add_argument("--suffix", metavar="TEXT",
                   help="Text put into the fine-tuned model's id, normalised as the legacy CLI did: lower case, "
                        "dashes for spaces and punctuation, at most 40 characters (default: none).")
    p.add_argument("--seed", type=str, default=None, metavar="N",
                   help=f"Seed of new weights, dropout and batch order (default: {d('seed')}).")
    p.add_argument("--no_follow", action="store_true",
                   help="Return once the job is queued; it runs in the background (default: follow it).")
    ext = p.add_argument_group("tunelab extensions")
    ext.add_argument("--method", choices=["auto", "classifier", "lm"], default=None,
                     help="How to train: classifier (a sequence-classification head), lm (causal language "
                          "modelling), or auto: classifier for classification data, else lm (default: auto; the job says "
                          "what it picked).")
    ext.add_argument("--lora", action="store_true", default=None,
                     help=f"Train a LoRA adapter (peft) instead of every weight (default: {d('lora')}).")
    ext.add_argument("--class_weights", action="store_true", default=None,
                     help="Classifier: weight the loss by inverse class frequency, for imbalanced labels "
                          f"(default: {d('class_weights')}).")
    ext.add_argument("--loss", choices=["cross_entropy", "logit_adjusted"], default=None,
                     help="Classifier loss: logit_adjusted adds the training prior's log to the logits in the loss "
                          "(Menon et al. 2021), so rare classes are not drowned out "
                          f"(default: {d('loss')}).")
    ext.add_argument("--pooling", choices=POOLINGS, default=None,
                     help="Classifier on an encoder: what the head reads; auto is the [CLS] token and the mean of "
                          "the token vectors for minilm-l6, cls is Hugging Face's own head "
                          f"(default: {d('pooling')}).")
    ext.add_argument("--logit_adjustment", action="store_true", default=None,
                     help="Tune a post-hoc logit adjustment strength on the validation file for macro-F1, stored "
                          "with the model and applied to its answers: fewer rare-class misses "
                          f"(default: {d('logit_adjustment')}).")
    ext.add_argument("--shuffle", action="store_true", default=None,
                     help=f"Shuffle the examples each epoch (default: {d('shuffle')}, which shuffles).")
    ext.add_argument("--no_shuffle", action="store_false", dest="shuffle",
                     help="Train in the file's order, as OpenAI did (a file sorted by label then trains sorted "
                          "by label: the chapter's 'unshuffled' experiment).")
    ext.add_argument("--warmup_ratio", type=str, default=None, metavar="X",
                     help=f"Fraction of steps with a linear learning-rate warm-up (default: {d('warmup_ratio')}).")
    ext.add_argument("--lr_schedule", choices=["linear", "cosine", "constant"], default=None,
                     help=f"Learning rate after the warm-up (default: {d('lr_schedule')} decay to 0).")
    ext.add_argument("--no_keep_best", action="store_false", dest="keep_best", default=None,
                     help="Register the last epoch, not the epoch that scored best on the validation file "
                          f"(default: {d('keep_best')}: keep the best when there is a validation file).")
    ext.add_argument("--early_stopping_patience", type=str, default=None, metavar="N",
                     help="Stop after N epochs without a better validation score, 0 never "
                          f"(default: {d('early_stopping_patience')}).")
    ext.add_argument("--max_length", type=str, default=None, metavar="N",
                     help=f"Tokens kept per example, prompt and completion (default: {d('max_length')}).")

    for name, func, text in [
        ("fine_tunes.follow", cmd_follow, "Stream a job's events until it ends (re-attach after Ctrl-C)."),
        ("fine_tunes.get", cmd_get, "Print a job as JSON, with its events (--table: a short summary)."),
        ("fine_tunes.events", cmd_events, "Print a job's events as JSON."),
        ("fine_tunes.cancel", cmd_cancel, "Cancel a queued or running job."),
        ("fine_tunes.delete", cmd_delete, "Delete a finished job and its artifacts (not its model)."),
        ("fine_tunes.results", cmd_results, "Print a job's results CSV (one row per step)."),
        ("fine_tunes.checkpoints", cmd_checkpoints,
         "List a job's epoch checkpoints, newest first, as JSON (--table: one line each): each answers "
         "`evaluate`, `complete` and the server as <model>:ckpt-step-<step> while its folder is kept."),
    ]:
        q = add_command(verbs, name, func, text)
        q.add_argument("-i", "--id", required=True, help="Job id (ftjob-… or the legacy ft-…).")
        if name == "fine_tunes.results":
            q.add_argument("--plot", nargs="?", const="", metavar="PNG",
                           help="Also draw the loss and accuracy curves to PNG (default without a name: "
                                "<job id>-curves.png).")
        if name == "fine_tunes.checkpoints":
            q.add_argument("--table", action="store_true",
                           help="One line per checkpoint: epoch, step, validation accuracy and log-loss, "
                                "which one the job kept, and its model name (default: JSON).")
        if name == "fine_tunes.get":
            q.add_argument("--table", action="store_true",
                           help="A short summary and the last events instead of JSON (default: JSON).")
        if name == "fine_tunes.events":
            q.add_argument("-s", "--stream", action="store_true",
                           help="Print each event as one JSON line as it happens, until the job ends "
                                "(default: every event so far, as one JSON list).")
    q = add_command(verbs, "fine_tunes.list", cmd_list, "List jobs as JSON, oldest first (--table: one line each).")
    q.add_argument("--latest", action="store_true", help="Print only the newest job id (for scripts).")
    q.add_argument("--table", action="store_true", help="One line per job instead of JSON (default: JSON).")

    f = add_command(verbs, "files.create", cmd_file_create, "Upload a file into the store.")
    f.add_argument("-f", "--file", required=True, help="The file to upload (JSONL of prompt/completion rows).")
    f.add_argument("-p", "--purpose", default="fine-tune", help="The file's purpose (default: fine-tune).")
    add_command(verbs, "files.list", cmd_file_list, "List uploaded files as JSON.")
    f = add_command(verbs, "files.get", cmd_file_get, "Print an uploaded file's object as JSON.")
    f.add_argument("-i", "--id", required=True, help="File id (file-…).")
    f = add_command(verbs, "models.delete", cmd_model_delete, "Delete a fine-tuned model and its weights.")
    f.add_argument("-i", "--id", required=True, help="The fine-tuned model's id.")
    f = add_command(verbs, "files.delete", cmd_file_delete, "Delete an uploaded file.")
    f.add_argument("-i", "--id", required=True, help="File id (file-…).")


NUMERIC = {"n_epochs": int, "batch_size": int, "learning_rate_multiplier": float, "prompt_loss_weight": float,
           "seed": int, "max_length": int, "classification_n_classes": int, "warmup_ratio": float,
           "early_stopping_patience": int}
AUTO_ACCEPTED = ("n_epochs", "batch_size", "learning_rate_multiplier", "warmup_ratio", "early_stopping_patience")


def _parse_numbers(args) -> None:
    """Numbers arrive as text so that every bad value is reported at once, not only the first."""
    problems = []
    for name, kind in NUMERIC.items():
        text = getattr(args, name, None)
        if text is None or (text == "auto" and name in AUTO_ACCEPTED):  # "auto": resolved per job
            continue
        try:
            setattr(args, name, kind(text))
        except ValueError:
            problems.append(f"--{name} must be {'an integer' if kind is int else 'a number'}, got {text!r}")
    betas = []
    for text in args.classification_betas or []:
        try:
            betas.append(float(text))
        except ValueError:
            problems.append(f"--classification_betas must be numbers, got {text!r}")
    args.classification_betas = betas
    if problems:
        raise InvalidInputError("Invalid arguments:", problems=problems)


def cmd_create(args) -> int:
    _parse_numbers(args)
    hp = {k: getattr(args, k) for k in ("n_epochs", "batch_size", "learning_rate_multiplier", "prompt_loss_weight",
                                        "seed", "method", "lora", "class_weights", "loss", "logit_adjustment",
                                        "pooling", "shuffle", "max_length", "warmup_ratio", "lr_schedule", "keep_best", "early_stopping_patience")}
    store = Store()
    try:
        submission = submit.submit(store, submit.job_request(
            args.training_file, args.model, args.validation_file, hyperparameters=hp,
            compute_classification_metrics=args.compute_classification_metrics,
            classification_n_classes=args.classification_n_classes,
            classification_positive_class=args.classification_positive_class,
            classification_betas=args.classification_betas, suffix=args.suffix))
    except InvalidInputError as exc:
        # Planning lists a missing file among all the other problems, as an input error: keep the
        # whole list, but exit 3 (not found) as evaluate does for a missing file.
        if _any_missing(store, args.training_file, args.validation_file):
            raise NotFoundError(exc.message, problems=exc.problems, hint=exc.hint) from None
        raise
    job = submission.job
    # With --no_follow stdout is the job's JSON alone (as the legacy CLI printed it), for scripts.
    notes = sys.stderr if args.no_follow else sys.stdout
    for notice in submission.notices:
        print(notice, file=notes)
    for ref, file_id in submission.uploads:
        print(f"Uploaded file from {ref}: {file_id}", file=notes)
    if args.no_follow:
        print(f"Created fine-tune: {job.legacy_id}", file=sys.stderr)
        print(f"Follow it with: tunelab api fine_tunes.follow -i {job.legacy_id}", file=sys.stderr)
        print_json(drop_none(views.legacy_job_view(store, store.get_job(job.id))))
        return 0
    print(f"Created fine-tune: {job.legacy_id}")
    print("Streaming events until fine-tuning is complete...")
    print("(Ctrl-C will interrupt the stream, but not cancel the fine-tune)", flush=True)
    return follow_job(store, job.id, shown=submission.notices)  # the notices are events too: once is enough


def _any_missing(store: Store, *refs: str | None) -> bool:
    """Whether a data file given as a path or a file id does not exist."""
    for ref in filter(None, refs):
        try:
            resolve_path(store, ref)
        except NotFoundError:
            return True
    return False


def cmd_follow(args) -> int:
    store = Store()
    return follow_job(store, submit.resume(store, args.id).id)


def follow_job(store: Store, job_id: str, shown=()) -> int:
    """Stream the job's events to its end and say how to use the model. Exit code: 0 once it
    succeeded (or was cancelled, as someone asked for that), 1 if it failed, 130 on Ctrl-C."""
    n_epochs = JobPlan.from_job(store.get_job(job_id)).n_epochs
    try:
        job = watch(store, job_id, shown=shown, text=lambda event: views.legacy_message(event, n_epochs))
    except KeyboardInterrupt:
        print(f"\nStream interrupted (the job goes on). To resume the stream, run:\n\n"
              f"  tunelab api fine_tunes.follow -i {store.get_job(job_id).legacy_id}\n")
        return EXIT_INTERRUPTED
    print()
    if job.status == SUCCEEDED:
        print("Job complete! Status: succeeded 🎉")
        print("Try out your fine-tuned model:\n")
        print(f"tunelab complete -m {job.fine_tuned_model} --prompt <YOUR_PROMPT> --max_tokens 1 --logprobs 5")
        return 0
    reason = (job.error or {}).get("message", "")
    print(f"Job {job.status}." + (f" Reason: {reason}" if reason else ""))
    return EXIT_FAILED if job.status == FAILED else EXIT_OK


def cmd_get(args) -> int:
    store = Store()
    job = store.get_job(args.id)
    if args.table:
        print(job_table(store, job))
        return 0
    print_json(drop_none(views.legacy_job_view(store, job, with_events=True)))
    return 0


def cmd_list(args) -> int:
    store = Store()
    if args.latest:
        jobs = store.list_jobs(limit=1)
        if not jobs:
            raise NotFoundError("No fine-tuning jobs yet.")
        print(jobs[0].legacy_id)
        return 0
    jobs = store.list_jobs()[::-1]
    if args.table:
        if not jobs:
            print("No fine-tuning jobs yet. Create one with `tunelab api fine_tunes.create`.")
            return 0
        print(format_columns(["ID", "STATUS", "CREATED", "MODEL (fine-tuned, or what it starts from)"],
                             [[j.legacy_id, views.LEGACY_STATUS.get(j.status, j.status), _time(j.created_at),
                               j.fine_tuned_model or f"from {j.model}"] for j in jobs]))
        return 0
    print_json({"object": "list", "data": [drop_none(views.legacy_job_view(store, j)) for j in jobs]})
    return 0


TABLE_EVENTS = 8
"""Events `fine_tunes.get --table` shows (the last ones; `fine_tunes.events` lists them all)."""


def _time(timestamp) -> str:
    return f"{datetime.fromtimestamp(timestamp):%Y-%m-%d %H:%M}" if timestamp else "—"


def _number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def job_table(store: Store, job) -> str:
    """`fine_tunes.get --table`: the job on a dozen lines, then its last events; at most 100 columns."""
    view = views.job_view(job)
    rows = [("status", views.LEGACY_STATUS.get(job.status, job.status)
             + (f" ({job.status})" if job.status in views.LEGACY_STATUS else ""))]
    base = f" → {job.base_model}" if job.base_model and job.base_model != job.model else ""
    rows.append(("model", f"{job.model}{base}, {view['training_method']}"))
    if job.fine_tuned_model:
        rows.append(("fine-tuned model", job.fine_tuned_model))
    finished = f"; finished {_time(job.finished_at)}" if job.finished_at else ""
    rows.append(("created", _time(job.created_at) + finished))
    hp = {k: view["hyperparameters"].get(k) for k in ("n_epochs", "batch_size", "learning_rate_multiplier")}
    hp["seed"] = view["seed"]
    rows.append(("hyperparameters", ", ".join(f"{k} {_number(v)}" for k, v in hp.items() if v is not None)))
    for title, file_id in (("training file", job.training_file), ("validation file", job.validation_file)):
        if not file_id:
            continue
        try:
            record = store.get_file(file_id)
            rows.append((title, f"{file_id} {record.filename} ({record.n_rows:,} rows)" if record.n_rows is not None
                         else f"{file_id} {record.filename}"))
        except NotFoundError:
            rows.append((title, f"{file_id} (deleted)"))
    if job.trained_examples:
        seconds = f" in {job.train_seconds:.1f} s" if job.train_seconds else ""
        tokens = f", {job.trained_tokens:,} tokens" if job.trained_tokens else ""
        rows.append(("trained", f"{job.trained_examples:,} examples{tokens}{seconds}"))
    if view.get("final_metrics"):
        rows.append(("final metrics", ", ".join(f"{k} {_number(v)}" for k, v in view["final_metrics"].items()
                                                if v is not None)))
    if job.error:
        rows.append(("error", str(job.error.get("message") or job.error)))
    events = store.list_events(job.id)
    shown = events[-TABLE_EVENTS:]
    rows.append(("events", f"{len(events)}" + (f", the last {len(shown)} below (all of them: fine_tunes.events)"
                                                if len(shown) < len(events) else "")))
    width = max(len(k) for k, _ in rows)
    lines = [clip(f"Fine-tune {job.legacy_id} ({job.id})")]
    lines += [clip(f"  {k:<{width}}  {v}") for k, v in rows]
    # The legacy verb's wording, as fine_tunes.create/follow/events write it ("Fine-tune succeeded").
    n_epochs = JobPlan.from_job(job).n_epochs
    lines += [clip(f"  {event_line(e, views.legacy_message(e, n_epochs))}") for e in shown]
    return "\n".join(lines)


def cmd_events(args) -> int:
    store = Store()
    job = store.get_job(args.id)
    n_epochs = JobPlan.from_job(job).n_epochs
    if args.stream:  # one JSON event per line, as they happen, until the job ends
        try:
            for event in follow(store, job.id):
                print(json.dumps(views.legacy_event_view(event, n_epochs), ensure_ascii=False), flush=True)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        return 0
    print_json({"object": "list", "data": [views.legacy_event_view(e, n_epochs) for e in store.list_events(job.id)]})
    return 0


def cmd_checkpoints(args) -> int:
    store = Store()
    job = store.get_job(args.id)
    checkpoints = sorted(store.list_checkpoints(job.id), key=lambda c: c.step, reverse=True)
    rows = [{**views.checkpoint_view(job, c), "available": (Path(c.path) / MODEL_META_FILE).is_file()}
            for c in checkpoints]
    if not args.table:
        print_json({"object": "list", "data": rows, "has_more": False})
        return 0
    if not rows:
        print(f"{job.id} has no epoch checkpoints yet.")
        return 0
    kept = (JobStats.from_job(job).kept_epoch if job.fine_tuned_model else None)
    header = ["epoch", "step", "val. accuracy", "val. log-loss", "", "model (evaluate -m / complete -m)"]
    lines = []
    for row in rows:
        m = row["all_metrics"]
        acc, loss = m.get("selection_accuracy"), m.get("selection_score")
        mark = "kept" if kept is not None and row["epoch"] == kept else ""
        lines.append((str(row["epoch"]), str(row["step_number"]), "—" if acc is None else f"{acc:.4f}",
                      "—" if loss is None else f"{loss:.4f}", mark,
                      row["fine_tuned_model_checkpoint"] if row["available"] else "(folder pruned)"))
    # Wide enough never to cut a model name: it is there to be copied.
    print(format_columns(header, lines, width=200, right=frozenset({0, 1, 2, 3})))
    if kept == 0:
        print(f"The job kept its starting point: no epoch above scored better on the validation file, so "
              f"{job.fine_tuned_model} has the weights of its parent, {job.model}.")
    return 0


def cmd_cancel(args) -> int:
    store = Store()
    print_json(drop_none(views.legacy_job_view(store, store.request_cancel(args.id))))
    return 0


def cmd_delete(args) -> int:
    store = Store()
    job = store.delete_job(args.id)
    print_json({"object": "fine-tune", "id": job.legacy_id, "deleted": True})
    return 0


def cmd_results(args) -> int:
    store = Store()
    job = store.get_job(args.id)
    path = results_path(store, job)
    sys.stdout.write(path.read_text())
    if args.plot is not None:
        from tunelab.evaluation.plots import plot_training_curves

        model = job.fine_tuned_model or f"{job.model} ({job.status})"
        out = plot_training_curves(path, args.plot or f"{job.legacy_id}-curves.png",
                                   title=f"Fine-tune {job.legacy_id}: {model}")
        print(f"Training curves written to {out}", file=sys.stderr)
    return 0


def cmd_file_create(args) -> int:
    require_paths(("file", args.file))
    print_json(views.file_view(upload_file(Store(), args.file, args.purpose)))
    return 0


def cmd_file_get(args) -> int:
    print_json(views.file_view(Store().get_file(args.id)))
    return 0


def cmd_model_delete(args) -> int:
    """`openai api models.delete -i MODEL`: the model and its weights (refused while other models or
    unfinished jobs depend on it)."""
    record = Store().delete_model(args.id)
    print_json({"id": record.id, "object": "model", "deleted": True})
    return 0


def cmd_file_list(args) -> int:
    print_json({"object": "list", "data": [views.file_view(f) for f in Store().list_files()]})
    return 0


def cmd_file_delete(args) -> int:
    record = Store().delete_file(args.id)
    print_json({"object": "file", "id": record.id, "deleted": True})
    return 0
