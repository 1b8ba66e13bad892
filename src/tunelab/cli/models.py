"""`tunelab models list|get|delete`: base models that can be fine-tuned here, and fine-tuned ones."""

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


def cmd_delete(args) -> int:
    model = Store().delete_model(args.model)
    print_json({"id": model.id, "object": "model", "deleted": True})
    return 0
