"""`tunelab models list|get|delete|prune`: base models that can be fine-tuned here, and fine-tuned ones."""

from __future__ import annotations

from tunelab.cli.common import add_command, format_columns, print_json
from tunelab.errors import NotFoundError
from tunelab.jobs.views import model_view
from tunelab.models.registry import list_base_models
from tunelab.store import Store


def register(sub) -> None:
    models = sub.add_parser("models", help="Base and fine-tuned models.", description="Base and fine-tuned models.")
    verbs = models.add_subparsers(dest="verb", metavar="VERB")
    p = add_command(verbs, "list", cmd_list, "List base models and fine-tuned models (a short table by default).")
    view = p.add_mutually_exclusive_group()
    view.add_argument("--table", action="store_true",
                      help="The short table, one line per model, at most 100 columns (the default).")
    view.add_argument("--json", action="store_true", help="Print JSON instead of the table.")
    view.add_argument("--latest", action="store_true",
                      help="Print only the newest fine-tuned model id (for scripts).")
    p = add_command(verbs, "get", cmd_get, "Show a fine-tuned model and its lineage as JSON.")
    p.add_argument("model", help="Fine-tuned model id.")
    p = add_command(verbs, "delete", cmd_delete, "Delete a fine-tuned model and its weights.")
    p.add_argument("model", help="Fine-tuned model id.")
    p = add_command(verbs, "prune", cmd_prune,
                    "Free disk space: keep the last N epoch checkpoints of each finished job and delete what killed writes left "
                    "half-done, or delete one model.")
    p.add_argument("--keep", type=int, default=1, metavar="N",
                   help="Epoch checkpoints kept per finished job; running jobs keep all (default: 1).")
    p.add_argument("--model", metavar="ID",
                   help="Delete this fine-tuned model's files and its record instead (refused while a LoRA adapter "
                        "or an unfinished job depends on it; default: none).")
    p.add_argument("--dry-run", action="store_true", help="Show what would be deleted; delete nothing.")


def cmd_list(args) -> int:
    base = list_base_models()
    tuned = Store().list_models()
    if args.latest:
        if not tuned:
            raise NotFoundError("No fine-tuned models yet.", hint="Create one with `tunelab api fine_tunes.create`.")
        print(tuned[-1].id)
        return 0
    if args.json:
        print_json({"base_models": base, "fine_tuned_models": [_view(m) for m in tuned]})
        return 0
    print("Base models (fine-tune with -m NAME):")
    print(format_columns(["  NAME", "KIND", "STATUS", "DESCRIPTION"],
                         [[f"  {row['name']}", row["kind"], "" if row["kind"] == "alias" else row["status"],
                           row["description"]] for row in base], cut_middle=False))
    if not tuned:
        print("\nNo fine-tuned models yet.")
        return 0
    print("\nFine-tuned models:")
    print(format_columns(["  ID", "METHOD", "EPOCHS", "FROM"],
                         [[f"  {m.id}", m.method, str(m.cumulative_epochs), m.parent_id or m.base_model]
                          for m in tuned], right=frozenset({2})))
    return 0


def _view(m) -> dict:
    # /v1/models' object; "job" is the name this command used before it printed that object.
    return {**model_view(m), "job": m.job_id}


def cmd_get(args) -> int:
    store = Store()
    model = store.get_model(args.model)
    lineage = []
    cursor = model
    while cursor.parent_id:
        cursor = store.get_model(cursor.parent_id)
        lineage.append(cursor.id)
    print_json({**_view(model), "lineage": lineage, "path": model.path})
    return 0


def cmd_prune(args) -> int:
    from tunelab.store.maintenance import prune_checkpoints

    store = Store()
    if args.model:
        if args.dry_run:
            blockers = store.model_dependents(store.get_model(args.model).id)
            print(f"Would delete {args.model}" + (f"; refused: {'; '.join(blockers)}" if blockers else "") + ".")
            return 0
        model = store.delete_model(args.model)
        print(f"Deleted {model.id} and its files ({model.path}).")
        return 0
    report = prune_checkpoints(store, keep=args.keep, dry_run=args.dry_run)
    verb = "Would delete" if args.dry_run else "Deleted"
    for item in report.removed:
        print(f"{verb} {item.path} ({_size(item.bytes)}): {item.reason}")
    print(f"{verb} {len(report.removed)} folder(s) and file(s), {_size(report.bytes)}." if report.removed
          else "Nothing to prune.")
    return 0


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def cmd_delete(args) -> int:
    model = Store().delete_model(args.model)
    print_json({"id": model.id, "object": "model", "deleted": True})
    return 0
