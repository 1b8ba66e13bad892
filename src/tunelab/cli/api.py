"""`tunelab api fine_tunes.*` and `files.*`: the legacy `openai api` verbs, same flags."""

from __future__ import annotations

import sys

from tunelab.cli.common import add_command, print_json
from tunelab.errors import InvalidInputError, NotFoundError
from tunelab.jobs import submit, views
from tunelab.jobs.files import results_path, upload_file
from tunelab.jobs.progress import watch
from tunelab.jobs.views import drop_none
from tunelab.store import Store
from tunelab.store.records import FAILED, SUCCEEDED


def register(sub) -> None:
    api = sub.add_parser("api", help="fine-tuning jobs and files (the legacy `openai api` verbs)")
    verbs = api.add_subparsers(dest="verb", metavar="VERB")

    p = add_command(verbs, "fine_tunes.create", cmd_create, "create a fine-tuning job and follow it")
    p.add_argument("-t", "--training_file", required=True, help="JSONL path or file id")
    p.add_argument("-v", "--validation_file", help="JSONL path or file id")
    p.add_argument("-m", "--model", default="ada",
                   help="base model (minilm-l6, smollm2-135m, ada/babbage/curie/davinci aliases, a local "
                        "Hugging Face folder, a hub id) or a fine-tuned model id to continue (default: ada)")
    p.add_argument("--n_epochs", type=str, default=None)
    p.add_argument("--batch_size", type=str, default=None)
    p.add_argument("--learning_rate_multiplier", type=str, default=None)
    p.add_argument("--prompt_loss_weight", type=str, default=None)
    p.add_argument("--compute_classification_metrics", action="store_true")
    p.add_argument("--classification_n_classes", type=str)
    p.add_argument("--classification_positive_class")
    p.add_argument("--classification_betas", type=str, nargs="+", default=[])
    p.add_argument("--suffix")
    p.add_argument("--seed", type=str, default=None)
    p.add_argument("--no_follow", action="store_true", help="return at once; the job runs in the background")
    ext = p.add_argument_group("tunelab extensions")
    ext.add_argument("--method", choices=["auto", "classifier", "lm"], default=None)
    ext.add_argument("--lora", action="store_true", default=None, help="train a LoRA adapter (peft)")
    ext.add_argument("--class_weights", action="store_true", default=None, help="inverse-frequency class weights")
    ext.add_argument("--shuffle", action="store_true", default=None,
                     help="shuffle each epoch (default: file order, as OpenAI did)")
    ext.add_argument("--max_length", type=str, default=None)

    for name, func, text in [
        ("fine_tunes.follow", cmd_follow, "stream a job's events until it ends"),
        ("fine_tunes.get", cmd_get, "print a job as JSON"),
        ("fine_tunes.events", cmd_events, "print a job's events"),
        ("fine_tunes.cancel", cmd_cancel, "cancel a queued or running job"),
        ("fine_tunes.delete", cmd_delete, "delete a finished job and its artifacts (not its model)"),
        ("fine_tunes.results", cmd_results, "print a job's results CSV"),
    ]:
        q = add_command(verbs, name, func, text)
        q.add_argument("-i", "--id", required=True, help="job id (ftjob-… or legacy ft-…)")
        if name == "fine_tunes.results":
            q.add_argument("--plot", nargs="?", const="", metavar="PNG",
                           help="also draw loss and accuracy curves to PNG (default: <job id>-curves.png)")
    q = add_command(verbs, "fine_tunes.list", cmd_list, "list jobs as JSON")
    q.add_argument("--latest", action="store_true", help="print only the newest job id (for scripts)")

    f = add_command(verbs, "files.create", cmd_file_create, "upload a file")
    f.add_argument("-f", "--file", required=True)
    f.add_argument("-p", "--purpose", default="fine-tune")
    add_command(verbs, "files.list", cmd_file_list, "list files")
    f = add_command(verbs, "files.delete", cmd_file_delete, "delete a file")
    f.add_argument("-i", "--id", required=True)


NUMERIC = {"n_epochs": int, "batch_size": int, "learning_rate_multiplier": float, "prompt_loss_weight": float,
           "seed": int, "max_length": int, "classification_n_classes": int}


def _parse_numbers(args) -> None:
    """Numbers arrive as text so that every bad value is reported at once, not only the first."""
    problems = []
    for name, kind in NUMERIC.items():
        text = getattr(args, name, None)
        if text is None:
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
                                        "seed", "method", "lora", "class_weights", "shuffle", "max_length")}
    store = Store()
    submission = submit.submit(store, submit.job_request(
        args.training_file, args.model, args.validation_file, hyperparameters=hp,
        compute_classification_metrics=args.compute_classification_metrics,
        classification_n_classes=args.classification_n_classes,
        classification_positive_class=args.classification_positive_class,
        classification_betas=args.classification_betas, suffix=args.suffix))
    job = submission.job
    for notice in submission.notices:
        print(notice)
    for ref, file_id in submission.uploads:
        print(f"Uploaded file from {ref}: {file_id}")
    print(f"Created fine-tune: {job.legacy_id}")
    if args.no_follow:
        print(f"Follow it with: tunelab api fine_tunes.follow -i {job.legacy_id}")
        return 0
    print("Streaming events until fine-tuning is complete...")
    print("(Ctrl-C will interrupt the stream, but not cancel the fine-tune)")
    return follow_job(store, job.id)


def cmd_follow(args) -> int:
    store = Store()
    return follow_job(store, submit.resume(store, args.id).id)


def follow_job(store: Store, job_id: str) -> int:
    """Stream the job's events to its end and say how to use the model; 0 once it succeeded."""
    try:
        job = watch(store, job_id)
    except KeyboardInterrupt:
        print(f"\nStream interrupted (the job goes on). To resume the stream, run:\n\n"
              f"  tunelab api fine_tunes.follow -i {store.get_job(job_id).legacy_id}\n")
        return 130
    print()
    if job.status == SUCCEEDED:
        print("Job complete! Status: succeeded 🎉")
        print("Try out your fine-tuned model:\n")
        print(f"tunelab complete -m {job.fine_tuned_model} --prompt <YOUR_PROMPT> --max_tokens 1 --logprobs 5")
        return 0
    reason = (job.error or {}).get("message", "")
    print(f"Job {job.status}." + (f" Reason: {reason}" if reason else ""))
    return 1 if job.status == FAILED else 0


def cmd_get(args) -> int:
    store = Store()
    print_json(drop_none(views.legacy_job_view(store, store.get_job(args.id), with_events=True)))
    return 0


def cmd_list(args) -> int:
    store = Store()
    if args.latest:
        jobs = store.list_jobs(limit=1)
        if not jobs:
            raise NotFoundError("No fine-tuning jobs yet.")
        print(jobs[0].legacy_id)
        return 0
    print_json({"object": "list",
                "data": [drop_none(views.legacy_job_view(store, j)) for j in store.list_jobs()[::-1]]})
    return 0


def cmd_events(args) -> int:
    store = Store()
    job = store.get_job(args.id)
    print_json({"object": "list", "data": [views.legacy_event_view(e) for e in store.list_events(job.id)]})
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

        out = plot_training_curves(path, args.plot or f"{job.legacy_id}-curves.png")
        print(f"Training curves written to {out}", file=sys.stderr)
    return 0


def cmd_file_create(args) -> int:
    print_json(views.file_view(upload_file(Store(), args.file, args.purpose)))
    return 0


def cmd_file_list(args) -> int:
    print_json({"object": "list", "data": [views.file_view(f) for f in Store().list_files()]})
    return 0


def cmd_file_delete(args) -> int:
    record = Store().delete_file(args.id)
    print_json({"object": "file", "id": record.id, "deleted": True})
    return 0
