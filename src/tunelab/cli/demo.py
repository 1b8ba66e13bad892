"""`tunelab demo`: the chapter's §4.6 end to end on the bundled reviews, offline, in minutes.

1. build the star-rating dataset twice: shuffled, and sorted by label;
2. fine-tune 1 epoch on the shuffled data (Listing 4.2, classification metrics on);
3. fine-tune 1 epoch on the sorted data, in file order (`--no_shuffle`: training shuffles by default);
4. continue the first model for 3 more epochs (incremental learning);
5. evaluate all three on the held-out test split: Table 4.1 with costs, plus baselines;
6. Listing 4.3 for one test review;
7. the `openai` client snippet to call the best model through `tunelab serve`.
Every job goes through the same store and background worker as `tunelab api fine_tunes.create`.
"""

from __future__ import annotations

import json
import random
import sys
import time
from datetime import datetime
from pathlib import Path

from tunelab.cli.common import add_command
from tunelab.errors import JobFailedError

# 500 validation rows: they pick the epoch a continuation keeps and fit its temperature; with 200,
# differences of two reviews decided both (see the README's measured demo).
QUICK = {"train_size": 1200, "val_size": 500, "test_size": 1000}
SERVE_PORT = 8765  # the port of the README's walkthrough (`tunelab serve` alone listens on 8000)


def register(sub) -> None:
    p = add_command(sub, "demo", cmd_demo, "Run the book chapter's experiments end to end on the bundled reviews.")
    p.add_argument("--model", "-m", default="ada", help="Base model (default: ada, which maps to minilm-l6).")
    p.add_argument("--train-size", type=int, default=None, metavar="N",
                   help=f"Training rows (default: {QUICK['train_size']}; --case categories: 800).")
    p.add_argument("--val-size", type=int, default=None, metavar="N",
                   help=f"Validation rows (default: {QUICK['val_size']}).")
    p.add_argument("--test-size", type=int, default=None, metavar="N",
                   help=f"Test rows (default: {QUICK['test_size']}).")
    p.add_argument("--full", action="store_true",
                   help="Use every bundled row: the canonical split, about 15.8k for training; slow on a CPU "
                        "(default: off).")
    p.add_argument("--continue-epochs", type=int, default=3, metavar="N",
                   help="Epochs of incremental learning on top of the first model (default: 3).")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="Report folder (default: ./tunelab-report/demo-<date>-<time>/).")
    p.add_argument("--seed", type=int, default=42, help="Seed of the data split and of training (default: 42).")
    p.add_argument("--case", choices=["stars", "categories"], default="stars",
                   help="Which case study: stars, the chapter's star ratings (§4.6); categories, its second one (§4.6.4), "
                        "the clothing reviews' 18 imbalanced, overlapping product classes: class weights, logit "
                        "adjustment, label-issue cleaning and suggested merges, one table (default: stars).")
    p.add_argument("--epochs", type=int, default=2, metavar="N",
                   help="With --case categories: epochs of each fine-tune (default: 2).")
    p.add_argument("--max-length", type=int, default=None, metavar="N",
                   help="With --case categories: tokens kept per review (default: the base model's, 256).")


def cmd_demo(args) -> int:
    from tunelab.data.builder import build_dataset
    from tunelab.evaluation.compare import compare_models
    from tunelab.inference.completion import complete_prompt, format_completion
    from tunelab.inference.predictor import load_predictor
    from tunelab.jobs.progress import interactive, watch
    from tunelab.jobs.submit import job_request, submit
    from tunelab.runtime import describe_device, device, use_bf16
    from tunelab.store import Store
    from tunelab.store.records import SUCCEEDED
    from tunelab.training.plan import JobStats

    if args.case == "categories":
        from tunelab.cli.demo_categories import run_categories

        return run_categories(args)
    started = time.monotonic()
    out = Path(args.out or f"tunelab-report/demo-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    sizes = {k: None for k in QUICK} if args.full else {k: getattr(args, k) or v for k, v in QUICK.items()}
    store = Store()
    # Three fine-tunes follow: say up front what they cost here, before the wait (on a CPU without
    # native bf16 the device line says why it is slow).
    print(describe_device())
    dev = device()
    if dev.type == "cpu" and _measured_setting(args):
        print("The demo trains three models: " + ("measured 4-6 min in all on 2-core CPUs in bf16, as here."
                                                 if use_bf16(dev) else "measured 14.5 min in all on a 2-core CPU in "
                                                 "fp32, as here (4-6 min on one with native bf16)."))

    _title("1. Build the star-rating dataset from the bundled clothing reviews (shuffled, and sorted by label)")
    shuffled = build_dataset("clothing-reviews", out_dir=out / "data-shuffled", seed=args.seed, **sizes)
    unshuffled = build_dataset("clothing-reviews", out_dir=out / "data-sorted", seed=args.seed, shuffle=False, **sizes)
    print(f"   train {shuffled.counts['train']}, validation {shuffled.counts['valid']}, "
          f"test {shuffled.counts['test']} rows; labels {[l.strip() for l in shuffled.labels]}")
    print(f"   shuffled: {shuffled.out_dir}\n   sorted by label: {unshuffled.out_dir}")
    n_classes = len(shuffled.labels)

    def fine_tune(title: str, data, model: str, epochs: int, file_order: bool = False):
        _title(title)
        print(f"   tunelab api fine_tunes.create -t {data.paths['train']} -v {data.paths['valid']} "
              f"--compute_classification_metrics --classification_n_classes {n_classes} -m {model} --n_epochs {epochs}"
              + (" --no_shuffle" if file_order else ""))
        # The sorted run trains in file order, as OpenAI did; every other run shuffles (the default).
        extra = {"shuffle": False} if file_order else {}
        submission = submit(store, job_request(
            data.paths["train"], model, data.paths["valid"],
            hyperparameters={"n_epochs": epochs, "seed": args.seed, **extra},
            compute_classification_metrics=True, classification_n_classes=n_classes))
        for notice in submission.notices:
            print(f"   {notice}")
        job = watch(store, submission.job.id, verbose=False, desc=f"   {submission.job.legacy_id}",
                    write=lambda line: print(f"   {line}", flush=True))
        if job.status != SUCCEEDED:
            raise JobFailedError(f"Job {job.legacy_id} {job.status}: {(job.error or {}).get('message', '')}",
                                 job_id=job.id, status=job.status)
        acc = JobStats.from_job(job).final_metrics.get("classification/accuracy")
        # The registered weights are the kept epoch's, not necessarily the last step's.
        kept = (store.find_model(job.fine_tuned_model).meta or {}).get("kept_epoch")
        if kept:
            scores = {c.epoch: (c.metrics or {}).get("selection_accuracy") for c in store.list_checkpoints(job.id)}
            acc = scores.get(kept) if scores.get(kept) is not None else acc
        tail = (", kept the parent's weights" if kept == 0 else
                f", validation accuracy {acc:.3f}" + (f" at the kept epoch {kept}" if kept else "") if acc is not None
                else "")
        print(f"   → {job.fine_tuned_model}  ({job.train_seconds:.0f} s{tail})")
        return job.fine_tuned_model, job

    first, _ = fine_tune("2. Fine-tune 1 epoch on the shuffled data (Listing 4.2)", shuffled, args.model, 1)
    sorted_model, _ = fine_tune("3. Fine-tune 1 epoch on the data sorted by label, in file order", unshuffled,
                             args.model, 1, file_order=True)
    continued, job = fine_tune(
        f"4. Continue the first model for {args.continue_epochs} more epochs (incremental learning)",
        shuffled, first, args.continue_epochs)
    continued_name = _continued_name(args.continue_epochs, JobStats.from_job(job).kept_epoch)
    print(f"   Every epoch of it, with its validation scores: tunelab api fine_tunes.checkpoints -i {job.id} --table")

    _title("5. Evaluate on the held-out test split (Table 4.1), with baselines")
    models = [sorted_model, first, continued]
    names = {sorted_model: "1 epoch, unshuffled", first: "1 epoch, shuffled", continued: continued_name}
    result = compare_models(models, shuffled.paths["test"], train_path=shuffled.paths["train"], out_dir=out / "compare",
                            store=store, names=names, progress=interactive())
    print(result["markdown"])

    _title("6. Qualitative check: first-token probabilities for one test review (Listing 4.3)")
    test_rows = [json.loads(line) for line in open(shuffled.paths["test"], encoding="utf-8")]
    review = random.Random(args.seed).choice(test_rows)
    predictor = load_predictor(first, store)
    listing = format_completion(complete_prompt(predictor, review["prompt"], max_tokens=1, logprobs=5))
    print(listing)
    print(f"(true star: {review['completion'].strip()})")
    (out / "listing_4_3.txt").write_text(listing + f"\n(true star: {review['completion'].strip()})\n")

    best = max(models, key=lambda m: result["reports"][m]["accuracy"])
    snippet = _snippet(best, review["prompt"])
    _title("7. Call the best model through the OpenAI-compatible server")
    print(f"   Start the server:  tunelab serve --port {SERVE_PORT}\n   Then, in Python:\n")
    print(snippet)
    (out / "openai_client_snippet.py").write_text(snippet + "\n")

    elapsed = time.monotonic() - started
    summary = {"models": {m: names[m] for m in models}, "best": best, "elapsed_seconds": round(elapsed, 1),
               "accuracy": {m: result["reports"][m]["accuracy"] for m in models},
               "baselines": result.get("baselines"), "sizes": shuffled.counts}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    _title(f"Done in {elapsed / 60:.1f} min. Report folder: {out}")
    return 0


def _continued_name(epochs: int, kept: int | None) -> str:
    """The continued model's column: what was asked (1 + N epochs) and, when keep_best registered
    another epoch, which one, so that the table does not claim epochs the model does not have."""
    name = f"1 + {epochs} epochs, shuffled"
    if kept is None or kept == epochs:
        return name
    if kept == 0:
        return f"{name} (kept the 1-epoch weights)"
    return f"{name} (kept epoch {kept} of {epochs})"


def _snippet(model_id: str, prompt: str) -> str:
    return f'''import math
from openai import OpenAI

client = OpenAI(base_url="http://127.0.0.1:{SERVE_PORT}/v1", api_key="tunelab")  # any non-empty key
res = client.completions.create(
    model="{model_id}",
    prompt={json.dumps(prompt)},  # built as in training: title, body, then the separator
    max_tokens=1, temperature=0, logprobs=5,
)
print("Predicted Star:", res.choices[0].text.strip())
for token, logprob in res.choices[0].logprobs.top_logprobs[0].items():
    print(f"{{token}}: {{math.exp(logprob):.4f}}")'''


def _measured_setting(args) -> bool:
    """The demo as its measured times were taken: default sizes, epochs and base model."""
    sizes = (args.train_size, args.val_size, args.test_size)
    return (not args.full and sizes == (None, None, None) and args.continue_epochs == 3
            and args.model in ("ada", "minilm-l6"))


def _title(text: str) -> None:
    print(f"\n== {text}", flush=True)
    sys.stdout.flush()
