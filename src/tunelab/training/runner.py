"""Run one job from the store to a registered model: load data and model, train, checkpoint per
epoch, register the final model atomically, record results and costs."""

from __future__ import annotations

import random
import resource
import time
import traceback
from collections import Counter
from pathlib import Path

import torch

from tunelab.data.readers import read_prompt_completion
from tunelab.errors import TunelabError
from tunelab.fsutil import atomic_dir
from tunelab.models.meta import Method, ModelMeta
from tunelab.models.loading import build_model, save_fine_tuned
from tunelab.models.registry import resolve_model
from tunelab.store import JobRecord, Store
from tunelab.store.records import CANCELLED, FAILED, SUCCEEDED
from tunelab.training import loop
from tunelab.training.plan import JobPlan, JobStats
from tunelab.models.encoding import encode_classifier, encode_lm
from tunelab.training.results import ResultsWriter, columns_for
from tunelab.training.validation import classification_columns

VALID_SAMPLE = 64  # validation rows for the per-step loss rows (OpenAI used one batch); the
# classification columns still score the whole validation file
KEEP_EPOCH_CHECKPOINTS = 3  # as OpenAI did: the last three epochs stay loadable


def run_job(store: Store, job: JobRecord) -> JobRecord:
    try:
        return _run(store, job)
    except loop.Cancelled:
        store.add_event(job.id, "Job cancelled.")
        return store.update_job(job.id, status=CANCELLED, finished_at=int(time.time()))
    except TunelabError as exc:
        store.add_event(job.id, f"Job failed: {exc.render()}", level="error")
        return store.update_job(job.id, status=FAILED, finished_at=int(time.time()),
                                error={"code": type(exc).__name__, "message": exc.render(), "param": None})
    except Exception as exc:  # a bug or a resource problem: keep the trace in the job's log
        trace = traceback.format_exc()
        log = store.job_dir(job.id) / "error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(trace)
        store.add_event(job.id, f"Job failed: {type(exc).__name__}: {exc} (trace in {log})", level="error")
        return store.update_job(job.id, status=FAILED, finished_at=int(time.time()),
                                error={"code": "internal_error", "message": f"{type(exc).__name__}: {exc}", "param": None})


def _run(store: Store, job: JobRecord) -> JobRecord:
    work = store.job_dir(job.id)
    work.mkdir(parents=True, exist_ok=True)
    plan = JobPlan.from_job(job)
    hp = plan.hyperparameters
    labels = plan.labels
    cpu_start = _cpu_seconds()
    wall_start = time.monotonic()
    resuming = (work / "resume" / "position.json").exists() or (work / "resume.old").exists()
    store.add_event(job.id, "Resuming fine-tuning job from its last checkpoint." if resuming
                    else "Fine-tuning job started.")

    train_rows = read_prompt_completion(store.get_file(job.training_file).path)
    valid_rows = read_prompt_completion(store.get_file(job.validation_file).path) if job.validation_file else []
    resolved = resolve_model(plan.parent_model or job.model, store, classification=plan.classification)
    model, tokenizer = build_model(resolved, plan.method, labels, lora=hp.lora, lora_r=hp.lora_r, seed=hp.seed)
    if resolved.parent is not None:
        store.add_event(job.id, f"Continuing from {resolved.parent.id} "
                                f"({resolved.parent.cumulative_epochs} epoch(s) so far).")

    train, valid = _encode(plan, tokenizer, train_rows, valid_rows)
    class_weights = (_class_weights(train, len(labels))
                     if plan.method == Method.CLASSIFIER and hp.class_weights else None)
    batch_size, learning_rate = plan.batch_size, plan.learning_rate
    data = loop.LoopData(train=train, valid=valid, method=plan.method.value,
                         pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                         class_weights=class_weights)
    classification = plan.scores_classes if valid_rows else None
    class_opts = plan.classification_options
    results = ResultsWriter(work / "results.csv", columns_for(classification, class_opts.classification_betas))
    total = loop.total_steps(len(train), batch_size, hp.n_epochs)
    if not resuming:
        store.add_event(job.id, f"Training {plan.method} on {resolved.base_model}: {len(train)} examples, "
                                f"{hp.n_epochs} epoch(s), batch size {batch_size}, {total} steps, "
                                f"learning rate {learning_rate:.2g}.",
                        data={"total_steps": total, "n_train": len(train), "batch_size": batch_size})

    holder = {"model": model}
    lora = hp.lora or bool(resolved.parent_meta and resolved.parent_meta.lora)
    hooks = loop.LoopHooks(
        on_progress=_progress_reporter(store, job.id),
        should_cancel=lambda: store.get_job(job.id).cancel_requested,
        on_epoch_end=lambda epoch, step, metrics: _epoch_checkpoint(
            store, job, holder["model"], tokenizer, epoch, step, metrics, _meta(job, plan, lora, epoch)),
    )
    if classification:
        v_prompts = [e.prompt for e in valid_rows]
        v_gold = [e.completion for e in valid_rows]
        hooks.classification_metrics = lambda: classification_columns(
            holder["model"], tokenizer, plan.method.value, v_prompts, v_gold, labels,
            positive_class=class_opts.classification_positive_class, betas=class_opts.classification_betas,
            batch_size=max(batch_size, 32), max_length=hp.max_length)

    outcome = loop.train(model, data, hp, batch_size=batch_size, learning_rate=learning_rate,
                         work_dir=work, results=results, hooks=hooks)

    meta = _meta(job, plan, lora, hp.n_epochs)
    with atomic_dir(work / "final") as folder:
        save_fine_tuned(outcome.model, tokenizer, folder, meta)
    result_file = store.add_file(results.path, purpose="fine-tune-results", filename=f"{job.id}-results.csv")
    record = store.register_model(
        base_id=plan.id_prefix, built_dir=work / "final", base_model=resolved.base_model,
        method=plan.method.value, labels=labels, cumulative_epochs=plan.cumulative_epochs,
        parent_id=plan.parent_model, job_id=job.id, organization_id=job.organization_id, suffix=job.suffix,
        meta=meta.to_dict())
    wall = time.monotonic() - wall_start
    store.add_event(job.id, f"New fine-tuned model created: {record.id}",
                    data={"final_metrics": outcome.final_metrics})
    store.add_event(job.id, "Job succeeded.")
    for stale in ("resume", "resume.old", "resume.tmp"):
        _rm(work / stale)
    stats = JobStats(cpu_seconds=_cpu_seconds() - cpu_start, device=str(next(outcome.model.parameters()).device),
                     final_metrics=outcome.final_metrics, steps=outcome.steps)
    return store.update_job(
        job.id, status=SUCCEEDED, finished_at=int(time.time()), fine_tuned_model=record.id,
        result_file=result_file.id, trained_tokens=outcome.trained_tokens, trained_examples=outcome.trained_examples,
        train_seconds=outcome.elapsed_before + wall,  # a resumed job counts its earlier attempts too
        options={**job.options, **stats.to_options()})


def _encode(plan: JobPlan, tokenizer, train_rows, valid_rows):
    hp = plan.hyperparameters
    sample = list(valid_rows)
    if len(sample) > VALID_SAMPLE:
        sample = random.Random(hp.seed).sample(sample, VALID_SAMPLE)
    if plan.method == Method.CLASSIFIER:
        index = {l: i for i, l in enumerate(plan.labels)}
        enc = lambda rows: encode_classifier(tokenizer, [e.prompt for e in rows], [index[e.completion] for e in rows], hp.max_length)
    else:
        # Free-form completions end with EOS so generation learns to stop; a label does not need it.
        eos = not plan.classification
        enc = lambda rows: encode_lm(tokenizer, [e.prompt for e in rows], [e.completion for e in rows], hp.max_length, eos)
    return enc(train_rows), enc(sample) if sample else []


def _class_weights(train, n_labels: int) -> torch.Tensor:
    counts = Counter(e.label for e in train)
    total = sum(counts.values())
    return torch.tensor([total / (n_labels * counts[i]) if counts[i] else 0.0 for i in range(n_labels)],
                        dtype=torch.float32)


def _meta(job: JobRecord, plan: JobPlan, lora: bool, epochs_here: int) -> ModelMeta:
    return ModelMeta(
        method=plan.method, kind=plan.kind, base_model=plan.base_model, labels=plan.labels, lora=lora,
        max_length=plan.hyperparameters.max_length, classification=plan.classification,
        base_learning_rate=plan.base_learning_rate, default_batch_size=plan.batch_size,
        epochs_this_job=epochs_here, job_id=job.id)


def _epoch_checkpoint(store, job, model, tokenizer, epoch, step, metrics, meta: ModelMeta) -> None:
    work = store.job_dir(job.id)
    with atomic_dir(work / "checkpoints" / f"epoch-{epoch}") as folder:
        save_fine_tuned(model, tokenizer, folder, meta)
    store.add_checkpoint(job.id, step=step, epoch=epoch, path=str(work / "checkpoints" / f"epoch-{epoch}"),
                         metrics={k: v for k, v in metrics.items() if v is not None})
    store.add_event(job.id, f"Completed epoch {epoch}; checkpoint saved at step {step}.")
    epochs = sorted(store.list_checkpoints(job.id), key=lambda c: c.epoch)
    for old in epochs[:-KEEP_EPOCH_CHECKPOINTS]:
        _rm(Path(old.path))


def _progress_reporter(store: Store, job_id: str):
    """Events for followers: every step during the first ones, then about every 2 seconds."""
    last = {"t": 0.0}

    def report(info: dict) -> None:
        if info.get("event") == "resumed":
            store.add_event(job_id, f"Resumed at step {info['global_step']} of {info['total_steps']}.", data=info)
            return
        now = time.monotonic()
        done = info["step"] == info["total_steps"]
        validation = any(k.startswith("validation") for k in info)
        if now - last["t"] < 2.0 and not done and not validation and info["step"] > 3:
            return
        last["t"] = now
        store.update_job(job_id, heartbeat_at=time.time())
        msg = f"Step {info['step']}/{info['total_steps']}: training loss={info['loss']:.4f}"
        if "validation_loss" in info:
            msg += f", validation loss={info['validation_loss']:.4f}"
        if info.get("classification/accuracy") is not None:
            msg += f", validation accuracy={info['classification/accuracy']:.4f}"
        store.add_event(job_id, msg, data={k: v for k, v in info.items() if v is not None})

    return report


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
