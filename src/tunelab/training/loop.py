"""The training loop, under Hugging Face Accelerate so that `accelerate launch` takes the same job
to several GPUs or machines. Resumable: every `checkpoint_seconds` the whole state (weights,
optimizer, scheduler, RNG, position in the epoch) is saved atomically."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from tunelab.errors import ResumeStateError
from tunelab.fsutil import disk_full_names
from tunelab.models.encoding import Encoded, collate
from tunelab.runtime import device as pick_device
from tunelab.runtime import CpuThreads, attention_kernels, bf16_weights, use_bf16
from tunelab.training.config import Hyperparameters
from tunelab.training.examples import bucketed_batches
from tunelab.training.losses import BatchResult, classifier_step, lm_step
from tunelab.training.precision import MasterWeights
from tunelab.training.results import ResultsWriter
from tunelab.models.meta import Method


class Cancelled(Exception):
    """The job was cancelled while training."""


class Paused(Cancelled):
    """The job was paused: its resumable state is saved at the step it stopped at, so a later run
    continues from there (a Cancelled for the code that only needs to know the loop stopped)."""


@dataclass
class LoopData:
    train: list[Encoded]
    valid: list[Encoded]  # fixed sample for validation loss rows (may be empty)
    method: str
    pad_id: int
    class_weights: torch.Tensor | None = None
    logit_offsets: torch.Tensor | None = None
    """classifier with the logit-adjusted loss: log(prior) per label, added to the logits in the loss."""


@dataclass
class LoopHooks:
    """What the job runner plugs in: progress reporting, cancellation, checkpoints, metrics."""
    on_progress: Callable[[dict], None] = lambda info: None
    should_cancel: Callable[[], bool] = lambda: False
    should_pause: Callable[[], bool] = lambda: False
    """Asked right after should_cancel: True saves the resumable state and raises Paused."""
    on_epoch_end: Callable[[int, int, dict], bool | None] = lambda epoch, step, metrics: None
    """Called after each epoch with (epoch, step, last results row); True stops training early."""
    classification_metrics: Callable[[], dict] | None = None


@dataclass
class LoopOutcome:
    model: object
    steps: int
    trained_tokens: int
    trained_examples: int
    final_metrics: dict = field(default_factory=dict)
    elapsed_before: float = 0.0  # training seconds of earlier attempts, when resumed from a checkpoint
    epochs_done: int = 0  # fewer than n_epochs when early stopping ended the job
    stopped_early: bool = False


WEIGHT_DECAY = 0.01


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """The trainable parameters in two AdamW groups: weight decay on the weight matrices only.
    Decaying biases and normalisation gains pulls them towards 0, which no pre-trained model was
    trained with (BERT's recipe, and what Trainer does when given a weight decay). The patterns are
    those of `Trainer.get_decay_parameter_names`, applied through the same helper, so the two agree for
    every architecture; importing Trainer itself would add 2 s to every job's start."""
    from transformers.trainer_pt_utils import get_parameter_names

    no_decay_patterns = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    decayed = set(get_parameter_names(model, [torch.nn.LayerNorm], no_decay_patterns))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if n in decayed], "weight_decay": weight_decay},
              {"params": [p for n, p in named if n not in decayed], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def total_steps(n_examples: int, batch_size: int, n_epochs: int) -> int:
    return math.ceil(n_examples / batch_size) * n_epochs


def make_scheduler(optimizer, hp: Hyperparameters, n_total: int):
    """Linear warm-up over `warmup_ratio` of the steps, then `lr_schedule` (linear or cosine decay to
    0, or constant)."""
    from transformers import get_scheduler

    name = {"constant": "constant_with_warmup"}.get(hp.lr_schedule, hp.lr_schedule)
    return get_scheduler(name, optimizer, num_warmup_steps=int((hp.warmup_ratio or 0.0) * n_total),
                         num_training_steps=n_total)


def train(model, data: LoopData, hp: Hyperparameters, *, batch_size: int, learning_rate: float,
          work_dir: Path, results: ResultsWriter | None, hooks: LoopHooks, resume: bool = True) -> LoopOutcome:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DataLoaderConfiguration, send_to_device

    dev = pick_device()
    # AcceleratorState is process-wide; a previous job (or a Trainer in the same process) may have
    # set another precision. Reset it, but keep the distributed PartialState of `accelerate launch`.
    AcceleratorState._reset_state(reset_partial_state=False)
    # split_batches: under `accelerate launch` each batch is split across the processes (below), so the
    # global batch and the number of steps are those of one process, and the scheduler steps once a step.
    masters_wanted = bf16_weights(dev)
    autocast_bf16 = use_bf16(dev) and not masters_wanted
    accelerator = Accelerator(mixed_precision="bf16" if autocast_bf16 else "no", cpu=dev.type == "cpu",
                              dataloader_config=DataLoaderConfiguration(split_batches=True))
    torch.manual_seed(hp.seed)
    groups = parameter_groups(model, WEIGHT_DECAY)
    masters = None
    if masters_wanted:
        # On the training device before the copies are made: `prepare` would move the model but not
        # them, and every step would copy gradients and weights across the bus.
        model.to(accelerator.device)
        masters = MasterWeights(model, groups)
        groups = masters.master_groups  # the optimizer updates the fp32 copies
        accelerator.register_for_checkpointing(masters)
    params = [p for group in groups for p in group["params"]]
    # The fused kernel: one pass over all parameters instead of several per tensor (6x faster on
    # CPU for MiniLM's 22M parameters; what Trainer uses by default too).
    optimizer = torch.optim.AdamW(groups, lr=learning_rate,
                                  fused=dev.type in ("cpu", "cuda") and all(p.is_floating_point() for p in params))
    steps_per_epoch = math.ceil(len(data.train) / batch_size)
    n_total = steps_per_epoch * hp.n_epochs
    scheduler = make_scheduler(optimizer, hp, n_total)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    class_weights = data.class_weights.to(accelerator.device) if data.class_weights is not None else None
    logit_offsets = data.logit_offsets.to(accelerator.device) if data.logit_offsets is not None else None
    eval_every = hp.eval_every or max(1, steps_per_epoch // 10)
    # On an accelerator, reading a number back (loss, counts) waits for every queued kernel: do it
    # for a block of steps at once. On CPU there is no queue, so every step is reported as it ends.
    flush_every = 1 if accelerator.device.type == "cpu" else 25
    on_cpu = accelerator.device.type == "cpu"
    # A copy from pageable host memory waits for the kernels already queued; a pinned batch copies
    # asynchronously. Measured on an H100 it changed nothing (the loop waits on the host launching
    # kernels, not on copies), but it costs nothing and helps where the GPU is the busy side.
    on_gpu = accelerator.device.type == "cuda"
    threads = CpuThreads() if on_cpu else None

    state_dir = Path(work_dir) / "resume"
    position = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "tokens": 0, "examples": 0,
                "results_rows": 0, "elapsed": 0.0}
    if resume and not state_dir.exists() and state_dir.with_name("resume.old").exists():
        os.replace(state_dir.with_name("resume.old"), state_dir)  # killed between the two renames
    if resume and (state_dir / "position.json").exists():
        try:
            accelerator.load_state(str(state_dir))
        except (ValueError, KeyError, RuntimeError, FileNotFoundError) as exc:
            if isinstance(exc, torch.OutOfMemoryError):
                raise
            # torch refuses an optimizer state whose parameter groups differ from the optimizer's:
            # the state of a job started before an upgrade that changed them (weight decay groups);
            # a state saved without fp32 master weights lacks their file.
            raise ResumeStateError(
                f"Cannot resume from this job's saved training state ({state_dir}): {exc}",
                hint="It was saved by another tunelab version (or is damaged). Finish the job with the version "
                     "that started it, or create it again (`tunelab api fine_tunes.create` with the same files and hyperparameters).") from exc
        position = json.loads((state_dir / "position.json").read_text())
        hooks.on_progress({"event": "resumed", **position, "total_steps": n_total})
    if results is not None:
        if position["global_step"]:
            results.truncate(position["results_rows"])
        else:
            results.reset()

    def step_fn(batch) -> BatchResult:
        if data.method == Method.CLASSIFIER:
            return classifier_step(model, batch, class_weights, logit_offsets)
        return lm_step(model, batch, hp.prompt_loss_weight)

    lengths = [len(e.input_ids) for e in data.train]
    elapsed_before = position["elapsed"]
    started = time.monotonic() - elapsed_before
    last_ckpt = time.monotonic()
    last_cancel_check = 0.0
    left_pad = data.method != Method.CLASSIFIER
    final_metrics: dict = {}
    pending: list[tuple] = []  # steps whose numbers are still on the device
    last_row: dict = {}  # the newest results row: an epoch's checkpoint records its training loss too
    stopped = False

    def flush(extra: dict | None = None) -> None:
        """Turn the pending steps into results rows and progress reports (one device sync)."""
        if not pending:
            return
        stacked = torch.stack([torch.stack([torch.as_tensor(v, dtype=torch.float32, device=accelerator.device)
                                            for v in entry[1:]]) for entry in pending])
        if accelerator.num_processes > 1:
            # Every process saw its share of each batch: the loss is their mean, the counts their sum
            # (a batch too small to split was seen whole by each, so each adds 1/N of its counts).
            n = accelerator.num_processes
            weights = torch.tensor([[1.0 / n] + [entry[0][2]] * 5 for entry in pending], device=accelerator.device)
            stacked = accelerator.reduce(stacked * weights, "sum")
        stacked = stacked.tolist()
        for k, (entry, values) in enumerate(zip(pending, stacked)):
            step, epoch, _ = entry[0]
            loss, seq_c, tok_c, n_seqs, n_tok, tokens = values
            position["tokens"] += int(tokens)
            position["examples"] += int(n_seqs)
            row = {"step": step, "elapsed_tokens": position["tokens"], "elapsed_examples": position["examples"],
                   "training_loss": loss, "training_sequence_accuracy": seq_c / max(n_seqs, 1),
                   "training_token_accuracy": tok_c / max(n_tok, 1)}
            if k == len(pending) - 1 and extra:
                row.update(extra)
            last_row.clear()
            last_row.update(row)
            if results is not None and accelerator.is_main_process:
                results.write(row)
            hooks.on_progress({"event": "step", "step": step, "total_steps": n_total, "epoch": epoch + 1,
                               "loss": row["training_loss"], "elapsed": time.monotonic() - started,
                               "training_token_accuracy": row["training_token_accuracy"],
                               **{k2: v for k2, v in row.items() if k2.startswith(("validation", "classification"))}})
        pending.clear()

    for epoch in range(position["epoch"], hp.n_epochs):
        batches = bucketed_batches(lengths, batch_size, seed=hp.seed, epoch=epoch, shuffle=bool(hp.shuffle))
        skip = position["step_in_epoch"] if epoch == position["epoch"] else 0
        # Sharded here rather than by Accelerate's data loader, which would give each process whole
        # batches (N times the global batch, 1/N of the steps): every process takes its share of each.
        shards = [_shard(b, accelerator.process_index, accelerator.num_processes) for b in batches[skip:]]
        loader = DataLoader(data.train, batch_sampler=[indices for indices, _ in shards],
                            collate_fn=lambda items: collate(items, data.pad_id, left_pad=left_pad),
                            pin_memory=on_gpu)
        model.train()
        for i, batch in enumerate(loader, start=skip):
            if threads is not None:
                threads.adjust()
            batch = send_to_device(batch, accelerator.device, non_blocking=on_gpu)
            share = shards[i - skip][1]
            with accelerator.autocast(), attention_kernels(accelerator.device):
                out = step_fn(batch)
            accelerator.backward(out.loss)
            if masters is not None:
                masters.grads_to_masters()  # `params` are then the copies, which clipping and the step see
            accelerator.clip_grad_norm_(params, 1.0)
            optimizer.step()
            if masters is not None:
                masters.masters_to_model()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)

            position["global_step"] += 1
            position["step_in_epoch"] = i + 1
            step = position["global_step"]
            pending.append(((step, epoch, share), out.loss.detach().float(), out.seq_correct, out.token_correct,
                            out.n_seqs, out.n_tokens, batch["attention_mask"].sum()))
            last_of_epoch = i + 1 == steps_per_epoch
            extra: dict = {}
            if data.valid and (step % eval_every == 0 or last_of_epoch):
                extra.update(_validate(model, data, step_fn, batch_size, accelerator))
                model.train()
            if last_of_epoch and hooks.classification_metrics is not None and accelerator.is_main_process:
                with _exact(masters):
                    final_metrics = hooks.classification_metrics()
                extra.update(final_metrics)
                model.train()
            if extra or last_of_epoch or len(pending) >= flush_every:
                flush(extra)
            now = time.monotonic()
            cancel = pause = False
            if now - last_cancel_check > 1.0 and accelerator.is_main_process:
                last_cancel_check = now
                cancel = hooks.should_cancel()
                pause = not cancel and hooks.should_pause()
            cancel, pause, save_due = _agree(accelerator, cancel, pause, now - last_ckpt > hp.checkpoint_seconds)
            if cancel:
                raise Cancelled()
            if last_of_epoch:
                position.update(epoch=epoch + 1, step_in_epoch=0)
                with _exact(masters):
                    ended = hooks.on_epoch_end(epoch + 1, step, {**last_row, **extra, "step": step})
                stopped, = _agree(accelerator, bool(ended))
            last_step = stopped or (last_of_epoch and epoch + 1 == hp.n_epochs)
            if (save_due or pause) and not last_step:
                flush()
                position["elapsed"] = now - started
                position["results_rows"] = results.rows if results is not None else 0
                _save_state(accelerator, state_dir, position)
                last_ckpt = time.monotonic()
                if pause:  # after the epoch's end was handled, so the resumed run starts on the next step
                    raise Paused()
            if stopped:
                break
        flush()
        position.update(epoch=epoch + 1, step_in_epoch=0)
        if stopped:
            break
    accelerator.wait_for_everyone()
    if masters is not None:
        masters.to_fp32()
    return LoopOutcome(accelerator.unwrap_model(model), position["global_step"], position["tokens"],
                       position["examples"], final_metrics, elapsed_before, epochs_done=position["epoch"],
                       stopped_early=stopped)


@torch.no_grad()
def _validate(model, data: LoopData, step_fn, batch_size: int, accelerator) -> dict:
    model.eval()
    loss_sum = tok_c = tok_n = seq_c = seq_n = 0.0
    left_pad = data.method != Method.CLASSIFIER
    for start in range(0, len(data.valid), batch_size):
        batch = collate(data.valid[start:start + batch_size], data.pad_id, left_pad=left_pad)
        batch = {k: (v.to(accelerator.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        with accelerator.autocast(), attention_kernels(accelerator.device):
            out = step_fn(batch)
        loss_sum += float(out.loss) * out.n_seqs
        tok_c += float(out.token_correct)
        tok_n += float(out.n_tokens)
        seq_c += float(out.seq_correct)
        seq_n += out.n_seqs
    return {"validation_loss": loss_sum / max(seq_n, 1), "validation_sequence_accuracy": seq_c / max(seq_n, 1),
            "validation_token_accuracy": tok_c / max(tok_n, 1)}


def _exact(masters: MasterWeights | None):
    """The model with its fp32 weights while the job scores and saves an epoch (see precision.py)."""
    return masters.fp32_model() if masters is not None else contextlib.nullcontext()


def _shard(batch: list[int], index: int, n: int) -> tuple[list[int], float]:
    """This process's share of a batch, and the fraction of the batch's counts it reports. Strided,
    so that the shares of a length-sorted batch are alike in length. A batch with fewer examples than
    processes is trained whole by each (identical gradients, so their mean is the batch's)."""
    if n == 1:
        return batch, 1.0
    if len(batch) < n:
        return batch, 1.0 / n
    return batch[index::n], 1.0


def _agree(accelerator, *flags: bool) -> list[bool]:
    """The main process's decisions, for every process. Cancelling, checkpointing and stopping early
    depend on the clock or the store, and every process must take the same branch, or the next
    collective operation waits forever."""
    if accelerator.num_processes == 1:
        return list(flags)
    from accelerate.utils import broadcast

    decided = broadcast(torch.tensor([float(f) for f in flags], device=accelerator.device), from_process=0)
    return [bool(v) for v in decided.tolist()]


def _save_state(accelerator, state_dir: Path, position: dict) -> None:
    """Write to a sibling folder, then swap, so a kill mid-save keeps the previous state. Every
    process saves its part (its RNG state); the main process alone moves folders."""
    tmp = state_dir.with_name("resume.tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    try:
        with disk_full_names(state_dir.parent, "the resumable checkpoint"):
            accelerator.save_state(str(tmp))
            accelerator.wait_for_everyone()
            if accelerator.is_main_process:
                (tmp / "position.json").write_text(json.dumps(position))
    except BaseException:
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # the previous state stays, complete
        raise
    if accelerator.is_main_process:
        old = state_dir.with_name("resume.old")
        shutil.rmtree(old, ignore_errors=True)
        if state_dir.exists():
            os.replace(state_dir, old)
        os.replace(tmp, state_dir)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
