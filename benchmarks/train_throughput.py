"""Training throughput: tunelab against Hugging Face `Trainer` code, same model, same data, same
machine, one process. Prints samples/s for each, their ratios, and each model's validation accuracy
(so that a speed-up is not bought with accuracy).

Three runs, in this order, each timed end to end (load the model, tokenise, train one epoch, save):

- plain `Trainer`: what people write from the Transformers docs: tokenise with
  padding="max_length" (128), default `TrainingArguments` (fp32);
- well-configured `Trainer`: what a skilled user writes: bf16=True where the device has native
  bf16, `DataCollatorWithPadding` (pad to the longest in the batch), length-grouped sampling
  (`train_sampling_strategy="group_by_length"`, or `group_by_length=True` on older transformers),
  the same 256-token truncation, learning rate, warm-up and weight decay as tunelab;
- tunelab: its tokenising (`tunelab.models.encoding`) and training loop (`tunelab.training.loop`,
  what a fine-tuning job runs), without the job store around them.

    python benchmarks/train_throughput.py [--rows 1024] [--model minilm-l6] [--batch-size 32] [--device cpu|cuda]
    python benchmarks/train_throughput.py --repeat 2     # alternate the runs twice, report medians
    python benchmarks/train_throughput.py --profile --device cuda --rows 4096 --batch-size 128
                                                         # where tunelab's step time goes (torch.profiler)

Needs torch, transformers, accelerate, scikit-learn, numpy and tunelab on the path (PYTHONPATH=src):
the training path imports neither the store (SQLAlchemy) nor the server (FastAPI). --model takes a
packaged name (resolved through the registry, which needs the store) or a model folder.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_LR = {"minilm-l6": 2e-4}  # the registry's base learning rate; tunelab's new-model multiplier is 0.5
LR_MULTIPLIER = 0.5
WARMUP = 0.06
MAX_LENGTH = 256


def machine(dev: str) -> str:
    import torch

    from tunelab.runtime import use_bf16

    name = torch.cuda.get_device_name(0) if dev == "cuda" else _cpu_name()
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores, {name}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), device {dev}, native bf16: "
            f"{'yes' if use_bf16(torch.device(dev)) else 'no'}")


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_avg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def prepare(rows: int, n_valid: int, workdir: Path) -> tuple[list[dict], list[dict]]:
    from tunelab.data.builder import build_dataset

    result = build_dataset("clothing-reviews", out_dir=workdir / "data", train_size=rows, val_size=n_valid,
                           test_size=50, seed=0)
    read = lambda p: [json.loads(line) for line in open(p)]
    return read(result.paths["train"]), read(result.paths["valid"])


def model_path(model: str) -> str:
    if Path(model).is_dir():
        return model if _has_weights(Path(model)) else random_weights(Path(model))
    from tunelab.models.registry import resolve_model

    return str(resolve_model(model).path)


def _has_weights(folder: Path) -> bool:
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def random_weights(folder: Path) -> str:
    """A folder holding a config (and tokenizer) but no weights, e.g. a model copied to a machine
    that cannot receive its weight file: the same architecture with seeded random weights, saved
    once beside a copy of the tokenizer, so every run starts from the same numbers. Throughput is
    that of the real model; accuracy is meaningless (the table says so)."""
    import hashlib
    import shutil

    import torch
    from transformers import AutoConfig, AutoModel

    if not (folder / "config.json").exists():
        raise SystemExit(f"{folder} holds neither weights nor a config.json: not a model folder")
    digest = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:12]
    target = Path(tempfile.gettempdir()) / f"tunelab-random-{folder.name}-{digest}"
    if not _has_weights(target):
        tmp = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        torch.manual_seed(0)
        AutoModel.from_config(AutoConfig.from_pretrained(folder), dtype=torch.float32).save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    print(f"{folder} has no weights: random weights from its config ({target}); throughput only, "
          "accuracy means nothing", flush=True)
    return str(target)


def run_plain_trainer(rows, labels, path, batch_size, out, dev, lr):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

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
                             use_cpu=dev == "cpu")
    loop_start = time.perf_counter()
    Trainer(model=net, args=args, train_dataset=DS()).train()
    loop_seconds = time.perf_counter() - loop_start
    net.save_pretrained(str(out / "final"))
    return time.perf_counter() - start, loop_seconds, len(rows), net, tokenizer


def skilled_arguments(out: Path, batch_size: int, dev: str, lr: float):
    """TrainingArguments as a skilled user sets them for this job on this device."""
    import dataclasses

    import torch
    from transformers import TrainingArguments

    from tunelab.runtime import use_bf16

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    sampling = ({"train_sampling_strategy": "group_by_length"} if "train_sampling_strategy" in names
                else {"group_by_length": True})
    warmup = {"warmup_ratio": WARMUP} if "warmup_ratio" in names else {"warmup_steps": WARMUP}
    return TrainingArguments(output_dir=str(out), per_device_train_batch_size=batch_size, num_train_epochs=1,
                             learning_rate=lr, weight_decay=0.01, lr_scheduler_type="linear", **warmup,
                             bf16=use_bf16(torch.device(dev)), **sampling, save_strategy="no", report_to=[],
                             logging_strategy="no", disable_tqdm=True, use_cpu=dev == "cpu", seed=42)


def run_skilled_trainer(rows, labels, path, batch_size, out, dev, lr):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path)
    enc = tokenizer([r["prompt"] for r in rows], truncation=True, max_length=MAX_LENGTH)
    index = {l: i for i, l in enumerate(labels)}
    dataset = [{"input_ids": ids, "attention_mask": mask, "labels": index[r["completion"]]}
               for ids, mask, r in zip(enc["input_ids"], enc["attention_mask"], rows)]
    net = AutoModelForSequenceClassification.from_pretrained(path, num_labels=len(labels))
    trainer = Trainer(model=net, args=skilled_arguments(out, batch_size, dev, lr), train_dataset=dataset,
                      data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer)
    loop_start = time.perf_counter()
    trainer.train()
    loop_seconds = time.perf_counter() - loop_start
    net.save_pretrained(str(out / "final"))
    return time.perf_counter() - start, loop_seconds, len(rows), net, tokenizer


def tunelab_model(rows, labels, path):
    """tunelab's tokenising and a fresh classifier on `path` (what a job does before its loop)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from tunelab.models.encoding import encode_classifier
    from tunelab.models.loading import load_tokenizer

    tokenizer = load_tokenizer(path)
    index = {l: i for i, l in enumerate(labels)}
    train = encode_classifier(tokenizer, [r["prompt"] for r in rows], [index[r["completion"]] for r in rows],
                              MAX_LENGTH)
    torch.manual_seed(42)
    net = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=index, dtype=torch.float32)
    net.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, train, net


def tunelab_loop(net, train, pad_id, batch_size, out, lr):
    """One epoch of tunelab's training loop (`tunelab.training.loop`, what a job runs)."""
    from tunelab.training import loop
    from tunelab.training.config import Hyperparameters

    hp = Hyperparameters(n_epochs=1, batch_size=batch_size, learning_rate_multiplier=LR_MULTIPLIER,
                         warmup_ratio=WARMUP, shuffle=True, keep_best=False, early_stopping_patience=0,
                         checkpoint_seconds=1e9)
    data = loop.LoopData(train=train, valid=[], method="classifier", pad_id=pad_id or 0)
    return loop.train(net, data, hp, batch_size=batch_size, learning_rate=lr, work_dir=out, results=None,
                      hooks=loop.LoopHooks(), resume=False)


def run_tunelab(rows, labels, path, batch_size, out, dev, lr):
    start = time.perf_counter()
    tokenizer, train, net = tunelab_model(rows, labels, path)
    loop_start = time.perf_counter()
    outcome = tunelab_loop(net, train, tokenizer.pad_token_id, batch_size, out, lr)
    loop_seconds = time.perf_counter() - loop_start
    outcome.model.save_pretrained(str(out / "final"))
    tokenizer.save_pretrained(str(out / "final"))
    return time.perf_counter() - start, loop_seconds, outcome.trained_examples, outcome.model, tokenizer


def profile_tunelab(args, folder: str, lr: float) -> None:
    """Where a tunelab training step spends its time: one epoch over the first half of the rows
    (warm-up: new batch shapes, kernel choices), one over the second half unprofiled and again
    under torch.profiler. Prints samples/s of each pass, how busy the GPU was, the host syncs, and
    the operators that take the most host and device time. A steady pass much faster than the
    warm-up one points at per-shape costs (cuDNN attention plans were one: runtime.attention_kernels);
    a GPU busy a small share of the time, at the host's cost of launching kernels."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    if args.device == "cpu":
        os.environ["TUNELAB_DEVICE"] = "cpu"
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        train, _ = prepare(args.rows, 50, Path(tmp))
        labels = sorted({r["completion"] for r in train})
        tokenizer, encoded, net = tunelab_model(train, labels, folder)
        half = len(encoded) // 2

        def timed(rows) -> float:
            sync()
            t = time.perf_counter()
            tunelab_loop(net, rows, tokenizer.pad_token_id, args.batch_size, Path(tmp) / "w", lr)
            sync()
            return time.perf_counter() - t

        print(f"warm-up pass ({half} rows): {half / timed(encoded[:half]):.1f} samples/s")
        n = len(encoded) - half
        print(f"steady pass ({n} rows): {n / timed(encoded[half:]):.1f} samples/s")
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
        with profile(activities=activities) as prof:
            wall = timed(encoded[half:])
    averages = prof.key_averages()
    print(f"profiled pass: {n / wall:.1f} samples/s ({wall:.2f} s; the profiler slows the host)")
    if args.device == "cuda":
        busy = sum(e.self_device_time_total for e in averages) / 1e6
        print(f"GPU kernels ran {busy:.2f} s of {wall:.2f} s: busy {100 * busy / wall:.0f} % of the time")
    for name in ("cudaStreamSynchronize", "aten::_local_scalar_dense", "cudaLaunchKernel", "cuLaunchKernelEx"):
        calls = sum(e.count for e in averages if e.key == name)
        if calls:
            print(f"  {name}: {calls} calls ({calls / math.ceil(n / args.batch_size):.0f} a step)")
    print(averages.table(sort_by="self_cpu_time_total", row_limit=20, max_name_column_width=60))
    if args.device == "cuda":
        print(averages.table(sort_by="self_device_time_total", row_limit=12, max_name_column_width=60))


def accuracy(net, tokenizer, rows, labels, dev) -> tuple[float, float, int]:
    """Validation accuracy, log-loss and the number of distinct labels predicted; fp32, the same
    code for every run (not timed). Log-loss tells apart models whose accuracy is the same (after
    one short epoch a model may still answer the majority label for most reviews)."""
    import torch

    net = net.to(dev).eval().float()
    index = {l: i for i, l in enumerate(labels)}
    correct, nll, predicted = 0, 0.0, set()
    with torch.inference_mode():
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            enc = tokenizer([r["prompt"] for r in chunk], truncation=True, max_length=MAX_LENGTH, padding=True,
                            return_tensors="pt").to(dev)
            logits = net(**enc).logits.float()
            gold = torch.tensor([index[r["completion"]] for r in chunk], device=logits.device)
            nll += float(torch.nn.functional.cross_entropy(logits, gold, reduction="sum"))
            pred = logits.argmax(-1)
            correct += int((pred == gold).sum())
            predicted.update(pred.tolist())
    return correct / len(rows), nll / len(rows), len(predicted)


RUNS = {"plain": ("plain Trainer (pad to 128, fp32)", run_plain_trainer),
        "skilled": ("Trainer, well configured", run_skilled_trainer),
        "tunelab": ("tunelab", run_tunelab)}


def one_run(name: str, args) -> dict:
    """One training run in this process (called in a fresh child per run, see main)."""
    import torch

    if args.device == "cpu":
        os.environ["TUNELAB_DEVICE"] = "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, valid = prepare(args.rows, args.valid, tmp)
        labels = sorted({r["completion"] for r in train})
        path, lr = args.model, args.learning_rate
        seconds, loop_seconds, n, net, tokenizer = RUNS[name][1](train, labels, path, args.batch_size, tmp / name, args.device, lr)
        acc, logloss, n_predicted = accuracy(net, tokenizer, valid, labels, args.device)
    used = sorted(m for m in ("sqlalchemy", "fastapi", "uvicorn", "starlette", "pydantic") if m in sys.modules)
    return {"seconds": seconds, "examples": n, "samples_per_s": n / seconds, "loop_seconds": loop_seconds,
            "loop_samples_per_s": n / loop_seconds, "accuracy": acc, "log_loss": logloss,
            "labels_predicted": n_predicted, "tunelab_threads": os.environ.get("TUNELAB_THREADS", "auto"),
            "threads": torch.get_num_threads(), "server_or_store_modules": used}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1024)
    parser.add_argument("--valid", type=int, default=500, help="validation reviews scored after each run")
    parser.add_argument("--model", default="minilm-l6", help="a packaged model name or a model folder")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument("--device", choices=["cpu", "cuda"], default=None,
                        help="default: cuda when torch sees a GPU, else cpu")
    parser.add_argument("--runs", default="plain,skilled,tunelab", help="which runs, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (alternating order); medians are reported")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--profile", action="store_true",
                        help="profile tunelab's loop instead: samples/s before and after its batch shapes "
                             "are seen, GPU busy share, host syncs, top operators")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    lr = args.learning_rate or BASE_LR.get(args.model, 2e-4) * LR_MULTIPLIER  # by name, before the folder
    if args.profile:
        profile_tunelab(args, model_path(args.model), lr)
        return
    if args.child:
        print("RESULT " + json.dumps(one_run(args.child, args)), flush=True)
        return

    # Each run in a fresh process: no state (thread pools, Accelerate's singletons, allocator caches,
    # warm kernels) leaks from one run into the next.
    names = [n.strip() for n in args.runs.split(",") if n.strip()]
    folder = model_path(args.model)
    results: dict[str, list[dict]] = {n: [] for n in names}
    loads = [load_avg()]
    for r in range(args.repeat):
        for name in (names if r % 2 == 0 else names[::-1]):
            cmd = [sys.executable, __file__, "--child", name, "--rows", str(args.rows), "--valid", str(args.valid),
                   "--model", folder, "--batch-size", str(args.batch_size), "--device", args.device,
                   "--learning-rate", str(lr)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
            if out.returncode or line is None:
                raise SystemExit(f"the {name} run failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            results[name].append(json.loads(line[7:]))
            loads.append(load_avg())
            last = results[name][-1]
            print(f"  round {r + 1} {name:<8} {last['samples_per_s']:7.1f} samples/s "
                  f"({last['loop_samples_per_s']:.1f} in the training loop)  accuracy {last['accuracy']:.3f}  "
                  f"log-loss {last['log_loss']:.3f}  threads {last['threads']}  (load {loads[-1]})", flush=True)

    med = {n: statistics.median(x["samples_per_s"] for x in v) for n, v in results.items()}
    loop_med = {n: statistics.median(x["loop_samples_per_s"] for x in v) for n, v in results.items()}
    print(f"\nmachine: {machine(args.device)}")
    print(f"load average (1/5/15 min) before and after each run: {' | '.join(loads)}")
    print(f"tunelab's CPU threads: {os.environ.get('TUNELAB_THREADS') or 'auto (runtime.CpuThreads)'}; "
          f"Trainer runs: torch's default")
    print(f"data: {args.rows} bundled clothing reviews (star ratings), 1 epoch, batch size {args.batch_size}, "
          f"model {args.model}; accuracy on {args.valid} validation reviews")
    print("samples/s: end to end (load, tokenise, train, save) and in the training loop alone (the steady "
          "state a long run approaches)")
    print(f"{'':<36}{'samples/s':>10}{'loop':>8}{'seconds':>9}{'accuracy':>10}{'log-loss':>10}{'labels':>8}"
          f"{'threads':>9}")
    for n, v in results.items():
        secs = statistics.median(x["seconds"] for x in v)
        acc = statistics.mean(x["accuracy"] for x in v)
        loss = statistics.mean(x["log_loss"] for x in v)
        print(f"{RUNS[n][0]:<36}{med[n]:>10.1f}{loop_med[n]:>8.1f}{secs:>9.1f}{acc:>10.3f}{loss:>10.3f}{v[-1]['labels_predicted']:>8}"
              f"{v[-1]['threads']:>9}")
    if "tunelab" in med:
        for n in ("plain", "skilled"):
            if n in med:
                print(f"ratio tunelab / {RUNS[n][0]}: {med['tunelab'] / med[n]:.2f}x end to end, "
                      f"{loop_med['tunelab'] / loop_med[n]:.2f}x in the training loop")
        print(f"tunelab run imported from the store/server stack: "
              f"{results['tunelab'][0]['server_or_store_modules'] or 'nothing'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(args.device), "loads": loads,
                                               "results": results, "medians": med,
                                               "loop_medians": loop_med}, indent=2))


if __name__ == "__main__":
    main()
