"""`tunelab models list|get|delete`: base models that can be fine-tuned here, and fine-tuned ones."""

from __future__ import annotations

from tunelab.cli.common import add_command, print_json
from tunelab.errors import NotFoundError
from tunelab.jobs.views import model_view
from tunelab.models.registry import list_base_models
from tunelab.store import Store


def register(sub) -> None:
    models = sub.add_parser("models", help="base and fine-tuned models")
    verbs = models.add_subparsers(dest="verb", metavar="VERB")
    p = add_command(verbs, "list", cmd_list, "list base models and fine-tuned models")
    p.add_argument("--json", action="store_true")
    p.add_argument("--latest", action="store_true", help="print only the newest fine-tuned model id (for scripts)")
    p = add_command(verbs, "get", cmd_get, "show a fine-tuned model and its lineage")
    p.add_argument("model")
    p = add_command(verbs, "delete", cmd_delete, "delete a fine-tuned model")
    p.add_argument("model")


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
    for row in base:
        print(f"  {row['name']:<14} {row['kind']:<8} {row['status']:<10} {row['description']}")
    print("\nFine-tuned models:" if tuned else "\nNo fine-tuned models yet.")
    for m in tuned:
        parent = f"  (continues {m.parent_id})" if m.parent_id else ""
        print(f"  {m.id}  {m.method}, {m.cumulative_epochs} epoch(s), base {m.base_model}{parent}")
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
