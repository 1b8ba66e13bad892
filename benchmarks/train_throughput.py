"""Training throughput: tunelab against plain Hugging Face `Trainer` code, same model, same data,
same machine, one process. Prints samples/s for each and their ratio.

The baseline is the code people write from the Transformers docs: tokenize with
padding="max_length" (128), `Trainer` with default arguments (fp32 on CPU). tunelab uses
length-bucketed dynamic padding and bf16 autocast where the CPU supports it. Both runs are timed
end to end (load the model, train one epoch, save it).

    python benchmarks/train_throughput.py [--rows 1024] [--model minilm-l6] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path


def machine() -> str:
    import torch

    from tunelab.runtime import device, use_bf16

    dev = device()
    name = torch.cuda.get_device_name(0) if dev.type == "cuda" else platform.processor() or platform.machine()
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), device {dev.type} {name}, bf16={'yes' if use_bf16(dev) else 'no'}")


def prepare(rows: int, workdir: Path) -> Path:
    from tunelab.data.builder import build_dataset

    result = build_dataset("clothing-reviews", out_dir=workdir / "data", train_size=rows, val_size=50, test_size=50,
                           seed=0)
    return result.paths["train"]


def run_tunelab(train: Path, model: str, batch_size: int, home: Path) -> tuple[float, int]:
    os.environ["TUNELAB_HOME"] = str(home)
    from tunelab.store import Store
    from tunelab.training.planning import JobRequest, create_job
    from tunelab.training.runner import run_job

    store = Store(home=home)
    job, _ = create_job(store, JobRequest(str(train), model, None, {"n_epochs": 1, "batch_size": batch_size}))
    start = time.perf_counter()
    job = run_job(store, store.claim_next_job(os.getpid()))
    elapsed = time.perf_counter() - start
    assert job.status == "succeeded", job.error
    return elapsed, job.trained_examples


def run_plain_trainer(train: Path, model: str, batch_size: int, out: Path) -> tuple[float, int]:
    import json

    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments)

    from tunelab.models.registry import resolve_model

    rows = [json.loads(line) for line in open(train)]
    labels = sorted({r["completion"] for r in rows})
    path = str(resolve_model(model).path)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path)
    enc = tokenizer([r["prompt"] for r in rows], padding="max_length", truncation=True, max_length=128)

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            item = {k: torch.tensor(v[i]) for k, v in enc.items()}
            item["labels"] = torch.tensor(labels.index(rows[i]["completion"]))
            return item

    net = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch_size, num_train_epochs=1,
                             save_strategy="no", report_to=[], logging_strategy="no", disable_tqdm=True,
                             use_cpu=not torch.cuda.is_available())
    Trainer(model=net, args=args, train_dataset=DS()).train()
    net.save_pretrained(str(out / "final"))
    return time.perf_counter() - start, len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--model", default="minilm-l6")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train = prepare(args.rows, tmp)
        t_base, n_base = run_plain_trainer(train, args.model, args.batch_size, tmp / "hf")
        t_ours, n_ours = run_tunelab(train, args.model, args.batch_size, tmp / "home")
    base, ours = n_base / t_base, n_ours / t_ours
    print(f"machine: {machine()}")
    print(f"data: {args.rows} bundled clothing reviews (star ratings), 1 epoch, batch size {args.batch_size}, "
          f"model {args.model}")
    print(f"plain HF Trainer (max_length=128 padding, fp32): {base:7.1f} samples/s  ({t_base:.1f} s)")
    print(f"tunelab (length buckets, bf16 autocast)       : {ours:7.1f} samples/s  ({t_ours:.1f} s)")
    print(f"ratio tunelab / plain HF: {ours / base:.2f}x")


if __name__ == "__main__":
    main()
