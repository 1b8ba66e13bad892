"""Accuracy of 1-epoch fine-tunes on the bundled reviews across batch sizes and learning-rate
multipliers: how the demo's defaults were chosen. Prints one line per setting.

    python benchmarks/hparam_sweep.py [--model minilm-l6] [--train-size 1200] [--grid 16:1,16:2,32:2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--train-size", type=int, default=1200)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--grid", default="32:1,16:1,16:2,8:1,32:3", help="batch:lr_multiplier,…")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TUNELAB_HOME"] = str(Path(tmp) / "home")
        from tunelab.data.builder import build_dataset
        from tunelab.evaluation.report import evaluate_model
        from tunelab.runtime import device
        from tunelab.store import Store
        from tunelab.training.planning import JobRequest, create_job
        from tunelab.training.runner import run_job

        data = build_dataset("clothing-reviews", out_dir=Path(tmp) / "data", train_size=args.train_size,
                             val_size=100, test_size=args.test_size, seed=42)
        store = Store()
        print(f"device {device()}, model {args.model}, {args.train_size} train rows, {args.epochs} epoch(s)")
        for cell in args.grid.split(","):
            batch, lrm = cell.split(":")
            job, _ = create_job(store, JobRequest(str(data.paths["train"]), args.model, None,
                                                  {"n_epochs": args.epochs, "batch_size": int(batch),
                                                   "learning_rate_multiplier": float(lrm)}))
            t = time.perf_counter()
            job = run_job(store, store.claim_next_job(os.getpid()))
            seconds = time.perf_counter() - t
            report = evaluate_model(job.fine_tuned_model, data.paths["test"], store=store, progress=False)
            print(f"batch {batch:>3} lr x{lrm:<4} acc {report['accuracy']:.3f} good-vs-bad "
                  f"{report['good_vs_bad_accuracy']:.3f} one-off {report['one_off_accuracy']:.3f} "
                  f"macro-F1 {report['macro_f1']:.3f}  train {seconds:.0f}s", flush=True)


if __name__ == "__main__":
    main()
