"""Run one job from the store to a registered model: load data and model, train, checkpoint per
epoch, register the final model atomically, record results and costs."""

from __future__ import annotations

import random
import re
import resource
import time
import traceback
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from tunelab.data.readers import Example, read_prompt_completion
from tunelab.errors import DataFileError, TunelabError
from tunelab.fsutil import atomic_dir, disk_full_names
from tunelab.models.meta import Method, ModelMeta
from tunelab.inference.adjustment import adjust, class_prior, fit_tau, log_prior
from tunelab.inference.calibration import apply_temperature, fit_temperature, nll
from tunelab.inference.scoring import score_labels
from tunelab.models.loading import build_model, load_fine_tuned, save_fine_tuned
from tunelab.models.registry import resolve_model
from tunelab.runtime import describe_device
from tunelab.store import JobRecord, Store
from tunelab.store.records import CANCELLED, FAILED, PAUSED, SUCCEEDED
from tunelab.training import distributed, loop
from tunelab.training.plan import JobPlan, JobStats
from tunelab.models.chat import TEMPLATE, TRANSCRIPT, chat_format, encode_chat, example_prompt, keep_latest_turns
from tunelab.models.encoding import encode_classifier, encode_lm
from tunelab.training.results import ResultsWriter, columns_for, write_current
from tunelab.training.validation import classification_columns

VALID_SAMPLE = 64  # validation rows for the per-step loss rows (OpenAI used one batch); the
# classification columns still score the whole validation file
KEEP_EPOCH_CHECKPOINTS = 3  # as OpenAI did: the last three epochs stay loadable


class JobAbandoned(Exception):
    """This worker lost the job (its lease ran out and another worker may hold it now): stop, and
    write nothing more about it."""


def run_job(store: Store, job: JobRecord, *, abandoned: Callable[[], bool] | None = None) -> JobRecord:
    """Run a claimed job to its end. `abandoned` says when the worker lost its lease on the job."""
    if not distributed.is_main_process():
        return _run_secondary(store, job)
    finished = _finish_registered(store, job)
    if finished is not None:
        return finished
    try:
        return _run(store, job, abandoned or (lambda: False))
    except JobAbandoned:
        return store.get_job(job.id)
    except loop.Paused:
        # Handing the job back (no worker) is what lets request_resume queue it again.
        store.add_event(job.id, "Job paused; its checkpoint is saved. Resume it to continue from there.")
        return store.update_job(job.id, worker_pid=None, worker_id=None)
    except loop.Cancelled:
        store.add_event(job.id, "Job cancelled.")
        # jobs.cancel already answered with a finished_at (the time of the cancel): keep it
        return store.update_job(job.id, status=CANCELLED,
                                finished_at=store.get_job(job.id).finished_at or int(time.time()))
    except TunelabError as exc:
        store.add_event(job.id, f"Job failed: {exc.render()}", level="error")
        return store.update_job(job.id, status=FAILED, finished_at=int(time.time()),
                                error={"code": failure_code(exc), "message": exc.render(), "param": None})
    except Exception as exc:  # a bug or a resource problem: keep the trace in the job's log
        trace = traceback.format_exc()
        log = store.job_dir(job.id) / "error.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(trace)
        store.add_event(job.id, f"Job failed: {type(exc).__name__}: {exc} (trace in {log})", level="error")
        return store.update_job(job.id, status=FAILED, finished_at=int(time.time()),
                                error={"code": "internal_error", "message": f"{type(exc).__name__}: {exc}", "param": None})


def failure_code(exc: TunelabError) -> str:
    """A failed job's `error.code`, in OpenAI's snake_case: the error's own code where it has one,
    invalid_training_file for a data file that turns out unusable once the job runs (OpenAI's code),
    else the error's kind (NotFoundError -> not_found, InvalidInputError -> invalid_input); it was
    the Python class name, which no OpenAI client expects."""
    if getattr(exc, "code", None):
        return exc.code
    if isinstance(exc, DataFileError):
        return "invalid_training_file"
    if type(exc) is TunelabError:
        return "error"
    name = type(exc).__name__.removesuffix("Error")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _finish_registered(store: Store, job: JobRecord) -> JobRecord | None:
    """A job whose worker was killed after registering its model but before marking the job
    succeeded comes back to the queue with its resume state already deleted: finish it with the model
    it registered instead of training a second one from the start (None: nothing registered)."""
    model = store.job_model(job.id)
    if model is None:
        return None
    results = [f for f in store.list_files()
               if f.purpose == "fine-tune-results" and f.filename == f"{job.id}-results.csv"]
    store.add_event(job.id, f"Its model {model.id} was registered before the worker stopped: "
                            f"the job is finished with it.")
    if not any(e.message == "Job succeeded." for e in store.list_events(job.id)):
        store.add_event(job.id, "Job succeeded.")
    work = store.job_dir(job.id)
    for stale in ("resume", "resume.old", "resume.tmp"):
        _rm(work / stale)
    return store.update_job(job.id, status=SUCCEEDED, finished_at=int(time.time()), fine_tuned_model=model.id,
                            result_file=results[0].id if results else job.result_file)


def _run_secondary(store: Store, job: JobRecord) -> JobRecord:
    """A process other than the main one under `accelerate launch`: it trains its share and writes
    nothing. Its errors propagate, so that the launcher stops every process and the worker fails the
    job with the log."""
    try:
        _run(distributed.SecondaryStore(store), job, lambda: False, main=False)
    except loop.Cancelled:
        pass
    return store.get_job(job.id)


def _run(store: Store, job: JobRecord, abandoned: Callable[[], bool], main: bool = True) -> JobRecord:
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
    model, tokenizer, pooling = build_model(resolved, plan.method, labels, lora=hp.lora, lora_r=hp.lora_r,
                                            seed=hp.seed, pooling=hp.pooling)
    if resolved.parent is not None and not resuming:
        store.add_event(job.id, f"Continuing from {resolved.parent.id} "
                                f"({resolved.parent.cumulative_epochs} epoch(s) so far).")
    elif plan.method == Method.CLASSIFIER and not resuming:
        store.add_event(job.id, f"Classifier head: {_HEAD_WORDS.get(pooling, pooling)} (pooling={pooling}).")

    # A continued model keeps the format it learnt its messages in, whatever rows continue it.
    fmt = resolved.parent_meta.chat_format if resolved.parent_meta is not None else None
    if train_rows[0].messages is not None:
        fmt = fmt or chat_format(plan.method, tokenizer)
        keep_latest_turns(tokenizer, plan.method, fmt)
        if not resuming:
            store.add_event(job.id, f"Chat data: messages rendered with {_FORMAT_WORDS[fmt]}.")
        valid_rows = [_as_prompt(e, tokenizer, fmt) for e in valid_rows]
    train, valid = _encode(plan, tokenizer, train_rows, valid_rows, fmt)
    class_weights = (_class_weights(train, len(labels))
                     if plan.method == Method.CLASSIFIER and hp.class_weights else None)
    prior = _prior(train_rows, labels) if plan.classification and labels else None
    parent_prior = resolved.parent_meta.class_prior if resolved.parent_meta is not None else None
    if prior is not None and parent_prior and len(parent_prior) == len(labels):
        # A continued classifier keeps its lineage's prior: corrections from feedback rarely cover
        # every label (a share of 0 would make logit adjustment boost a missing label by
        # tau * 13.8), and the parent's head learnt its bias, or its logit-adjusted loss offsets,
        # from the parent's data.
        prior = list(parent_prior)
    batch_size, learning_rate = plan.batch_size, plan.learning_rate
    data = loop.LoopData(train=train, valid=valid, method=plan.method.value,
                         pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                         class_weights=class_weights,
                         logit_offsets=(torch.tensor(log_prior(prior), dtype=torch.float32)
                                        if hp.loss == "logit_adjusted" and prior is not None else None))
    classification = plan.scores_classes if valid_rows else None
    class_opts = plan.classification_options
    results = ResultsWriter(work / "results.csv", columns_for(classification, class_opts.classification_betas))
    total = loop.total_steps(len(train), batch_size, hp.n_epochs)
    if not resuming:
        store.add_event(job.id, f"Training {plan.method} on {resolved.base_model}: {len(train)} examples, "
                                f"{hp.n_epochs} epoch(s), batch size {batch_size}, {total} steps, "
                                f"learning rate {learning_rate:.2g}"
                                + (f" (peak; {int(hp.warmup_ratio * total)} warm-up steps, then {hp.lr_schedule} decay)"
                                   if hp.lr_schedule != "constant" else "") + ".",
                        data={"total_steps": total, "n_train": len(train), "batch_size": batch_size})
        store.add_event(job.id, describe_device())  # the loop's device: the model is not on it yet

    holder = {"model": model}
    full_valid = 0 < len(valid_rows) <= VALID_SAMPLE
    lease = _LeaseCheck(abandoned)
    control = _JobControl(store, job)
    lora = hp.lora or bool(resolved.parent_meta and resolved.parent_meta.lora)
    selector = _EpochSelector(store, job, plan, labels, valid_rows, tokenizer, batch_size)
    if selector.keep_best and resolved.parent is not None:
        # The starting point competes too: continuing must never register a model worse than its parent.
        # A resumed job scores it again (the score is not saved) but said so when it first started.
        selector.score_start(model, announce=not resuming)

    def epoch_end(epoch: int, step: int, row: dict) -> bool:
        if not main:
            return False  # the main process decides whether to stop, and the loop tells the others
        scored = selector.record(epoch, row)
        if full_valid and row.get("validation_loss") is not None:  # the sample is the whole file
            scored = {**scored, "full_valid_loss": row["validation_loss"],
                      "full_valid_mean_token_accuracy": row.get("validation_token_accuracy")}
        _epoch_checkpoint(store, job, holder["model"], tokenizer, epoch, step, row,
                          _meta(job, plan, lora, epoch, scored.get("temperature", 1.0), fmt, pooling),
                          extra=scored, keep=selector.best_epoch)
        return selector.should_stop(epoch)

    hooks = loop.LoopHooks(
        on_progress=_progress_reporter(store, job.id, full_valid=full_valid),
        should_cancel=lambda: lease.check() or control.poll().cancel_requested,
        should_pause=lambda: control.last.status == PAUSED,
        on_epoch_end=epoch_end,
    )
    if selector.scores_labels:
        def epoch_metrics() -> dict:
            logp = selector.score(holder["model"])
            if not classification:
                return {}
            return classification_columns(
                holder["model"], tokenizer, plan.method.value, selector.prompts, selector.gold, labels,
                positive_class=class_opts.classification_positive_class, betas=class_opts.classification_betas,
                batch_size=max(batch_size, 32), max_length=hp.max_length, scores=logp)
        hooks.classification_metrics = epoch_metrics

    try:
        outcome = loop.train(model, data, hp, batch_size=batch_size, learning_rate=learning_rate,
                             work_dir=work, results=results if main else None, hooks=hooks)
    except loop.Cancelled:
        if lease.lost:
            raise JobAbandoned() from None
        raise
    if not main:
        return store.get_job(job.id)
    lease.require()
    if control.poll().cancel_requested:  # cancelled during the last steps: no model is registered
        raise loop.Cancelled()

    final_model, kept = outcome.model, outcome.epochs_done
    if outcome.stopped_early:
        store.add_event(job.id, f"Stopped early after epoch {outcome.epochs_done} of {hp.n_epochs}: "
                                f"{hp.early_stopping_patience} epoch(s) without a better validation score.")
    if selector.keep_best and selector.best_epoch is not None:
        kept = selector.best_epoch
        if kept != outcome.epochs_done:
            source = resolved.parent.path if kept == 0 else work / "checkpoints" / f"epoch-{kept}"
            final_model = load_fine_tuned(source)[0]
        store.add_event(job.id, selector.kept_message(kept, outcome.epochs_done),
                        data={"kept_epoch": kept, "epochs": selector.summary()})
    temperature = selector.temperature_for(kept, final_model)

    meta = _meta(job, plan, lora, kept, temperature, fmt, pooling)
    meta.kept_epoch = kept if selector.keep_best else None
    meta.class_prior, meta.loss = prior, hp.loss
    if hp.logit_adjustment and selector.scores_labels and prior is not None:
        meta.logit_adjustment, temperature = _fit_adjustment(store, job, selector, final_model, temperature, prior)
        meta.temperature = temperature
    with disk_full_names(work / "final", "the model"), atomic_dir(work / "final") as folder:
        save_fine_tuned(final_model, tokenizer, folder, meta)
    with disk_full_names(store.files_dir, "the results file"):
        source = results.path
        if store.get_job(job.id).options.get("results_format") == "current":  # created on /v1/fine_tuning/jobs
            source = write_current(results.path, work / "results-current.csv")
        result_file = store.add_file(source, purpose="fine-tune-results", filename=f"{job.id}-results.csv")
    lease.require()
    # Cancelled while the model was being saved (seconds for a real model): the cancel was answered
    # `cancelled`, so no model may appear for the job now.
    if control.poll().cancel_requested:
        _rm(work / "final")
        raise loop.Cancelled()
    # Epochs the registered weights have seen: the parent's, plus those of this job that were kept.
    cumulative = plan.cumulative_epochs - plan.n_epochs + kept
    record = store.register_model(
        base_id=plan.id_prefix, built_dir=work / "final", base_model=resolved.base_model,
        method=plan.method.value, labels=labels, cumulative_epochs=cumulative,
        parent_id=plan.parent_model, job_id=job.id, organization_id=job.organization_id, suffix=job.suffix,
        meta=meta.to_dict(), id_style=plan.model_id_style)
    wall = time.monotonic() - wall_start
    store.add_event(job.id, f"New fine-tuned model created: {record.id}",
                    data={"final_metrics": outcome.final_metrics, "kept_epoch": kept, "temperature": temperature})
    store.add_event(job.id, "Job succeeded.")
    for stale in ("resume", "resume.old", "resume.tmp"):
        _rm(work / stale)
    stats = JobStats(cpu_seconds=_cpu_seconds() - cpu_start, device=str(next(outcome.model.parameters()).device),
                     final_metrics=outcome.final_metrics, steps=outcome.steps, kept_epoch=kept,
                     temperature=temperature)
    done = store.update_job(
        job.id, unless_status=CANCELLED, status=SUCCEEDED, finished_at=int(time.time()), fine_tuned_model=record.id,
        result_file=result_file.id, trained_tokens=outcome.trained_tokens, trained_examples=outcome.trained_examples,
        train_seconds=outcome.elapsed_before + wall,  # a resumed job counts its earlier attempts too
        options={**job.options, **stats.to_options()})
    if done.status == CANCELLED:  # cancelled in the moment since the check above: it stays cancelled, modelless
        store.delete_model(record.id)
        store.add_event(job.id, f"Cancelled while its model was registered; {record.id} was deleted.")
        raise loop.Cancelled()
    return done


class _EpochSelector:
    """Scores the whole validation file at the end of every epoch (one pass, shared with the
    classification columns), fits a temperature to it, keeps the best epoch and says when to stop.

    The best epoch has the highest validation accuracy (what the model is used for). Epochs within
    one standard error of the best accuracy (sqrt(p(1 - p) / n) on n validation rows) count as tied,
    and the latest of them wins: it has had the whole schedule (the rate decays to 0 at the end), and
    a smaller lead for an earlier epoch is noise, not over-fitting. On SST-5 (1,099 validation rows,
    standard error 1.5 points) seeds 7 and 13 scored 0.486 / 0.479 / 0.480 and 0.460 / 0.481 / 0.482;
    accuracy alone kept epochs 1 and 3 (test 0.495 and 0.523), log-loss would keep epoch 2 twice
    (0.497, 0.510), and epoch 3 scored 0.520 and 0.523. A lead larger than the noise still wins: with
    seed 42 (0.466 / 0.507 / 0.487) epoch 2 is kept. Exact ties of accuracy within the tied set go to
    the later epoch too; without accuracies the lower validation log-loss (at the epoch's fitted
    temperature), then the earlier epoch. A continued job's starting point (epoch 0) stays unless
    an epoch beats it outright.
    Without labels to score (free-form completions), the sampled validation loss of the epoch's last
    row is used."""

    def __init__(self, store: Store, job: JobRecord, plan: JobPlan, labels, valid_rows, tokenizer, batch_size: int):
        hp = plan.hyperparameters
        self.store, self.job, self.plan, self.labels, self.tokenizer = store, job, plan, labels, tokenizer
        self.batch_size = max(batch_size, 32)
        self.keep_best = bool(hp.keep_best and valid_rows)
        self.patience = int(hp.early_stopping_patience or 0)
        self.scores_labels = bool(labels and valid_rows and plan.classification)
        self.calibrate = bool(hp.calibrate and self.scores_labels)
        self.prompts = [e.prompt for e in valid_rows]
        self.gold = [e.completion for e in valid_rows]
        index = {label: i for i, label in enumerate(labels or [])}
        self.gold_idx = np.array([index[g] for g in self.gold], dtype=np.int64) if self.scores_labels else None
        self.history: dict[int, dict] = {}
        self._logp: np.ndarray | None = None
        # A resumed job gets the epochs it scored before from its checkpoint rows.
        for ckpt in store.list_checkpoints(job.id):
            m = ckpt.metrics or {}
            if m.get("selection_score") is not None:
                self.history[ckpt.epoch] = {"score": m["selection_score"], "temperature": m.get("temperature", 1.0),
                                            "accuracy": m.get("selection_accuracy")}

    def score(self, model) -> np.ndarray:
        self._logp = score_labels(model, self.tokenizer, self.plan.method.value, self.prompts, self.labels,
                                  batch_size=self.batch_size, max_length=self.plan.hyperparameters.max_length)
        return self._logp

    def _summarise(self, logp: np.ndarray) -> dict:
        temperature = fit_temperature(logp, self.gold_idx) if self.calibrate else 1.0
        return {"score": nll(logp, self.gold_idx, temperature), "temperature": temperature,
                "accuracy": float((logp.argmax(1) == self.gold_idx).mean()), "raw_score": nll(logp, self.gold_idx)}

    def score_start(self, model, announce: bool = True) -> None:
        if not self.scores_labels:
            return
        entry = self._summarise(self.score(model))
        self.history[0] = entry
        if announce:
            self.store.add_event(self.job.id, f"Starting point (the parent's weights): validation "
                                              f"{self._describe(entry)}.")
        self._logp = None

    def record(self, epoch: int, row: dict) -> dict:
        """Score the epoch that just ended; returns what the checkpoint row keeps."""
        if self._logp is not None:
            entry = self._summarise(self._logp)
            self._logp = None
        elif row.get("validation_loss") is not None:
            entry = {"score": float(row["validation_loss"]), "temperature": 1.0, "accuracy": None}
        else:
            return {}
        best_before = self.best_epoch
        self.history[epoch] = entry
        if self.keep_best:
            tail = "best so far" if self.best_epoch == epoch else f"best is still epoch {best_before}"
            self.store.add_event(self.job.id, f"Epoch {epoch}: validation {self._describe(entry)} ({tail}).",
                                 data={"epoch": epoch, **entry})
        return {"selection_score": entry["score"], "temperature": entry["temperature"],
                "selection_accuracy": entry.get("accuracy")}

    @staticmethod
    def _describe(entry: dict) -> str:
        if entry.get("accuracy") is None:
            return f"loss {entry['score']:.4f}"
        return f"accuracy {entry['accuracy']:.4f}, log-loss {entry['score']:.4f}"

    def _rank(self, epoch: int) -> tuple:
        entry = self.history[epoch]
        accuracy = entry.get("accuracy")
        return (-accuracy if accuracy is not None else 0.0, entry["score"])

    @property
    def best_epoch(self) -> int | None:
        if not self.history:
            return None
        trained = [e for e in sorted(self.history) if e > 0]
        if not trained:
            return 0
        accuracy = {e: self.history[e].get("accuracy") for e in trained}
        if all(a is not None for a in accuracy.values()):
            top = max(accuracy.values())
            noise = float(np.sqrt(top * (1 - top) / max(1, len(self.prompts))))
            chosen = max(e for e in trained if accuracy[e] >= top - noise)
        else:
            chosen = min(trained, key=self._rank)
        if 0 not in self.history:
            return chosen
        # The parent's weights are replaced only by an epoch strictly better than them: the latest
        # tied one, else the most accurate one.
        return next((e for e in (chosen, min(trained, key=self._rank)) if self._rank(e) < self._rank(0)), 0)

    def should_stop(self, epoch: int) -> bool:
        best = self.best_epoch
        return bool(self.keep_best and self.patience and best is not None and epoch - best >= self.patience
                    and epoch < self.plan.n_epochs)

    def kept_message(self, kept: int, done: int) -> str:
        entry = self.history[kept]
        if kept == 0:
            return (f"Kept the starting point (the parent's weights): no epoch of this job did better on the "
                    f"validation file ({self._describe(entry)}).")
        return f"Kept epoch {kept} of {done}: the best on the validation file ({self._describe(entry)})."

    def summary(self) -> list[dict]:
        return [{"epoch": e, **v} for e, v in sorted(self.history.items())]

    def temperature_for(self, epoch: int, model) -> float:
        """The kept weights' temperature: fitted when their epoch was scored, else fitted now."""
        if not self.calibrate:
            return 1.0
        entry = self.history.get(epoch)
        if entry is None or entry.get("temperature") is None:
            entry = self._summarise(self.score(model))
            self._logp = None
        temperature = float(entry["temperature"])
        raw = entry.get("raw_score")
        if temperature == 1.0:
            message = ("Calibrated probabilities: temperature 1 (the validation file does not show a significantly "
                       "better one" + (f"; log-loss {raw:.4f})." if raw is not None else ")."))
        else:
            message = (f"Calibrated probabilities: temperature {temperature:.3f} fitted on the validation file"
                       + (f" (log-loss {raw:.4f} -> {entry['score']:.4f})." if raw is not None else "."))
        self.store.add_event(self.job.id, message, data={"temperature": temperature})
        return temperature


_FORMAT_WORDS = {TEMPLATE: "the base model's chat template",
                 TRANSCRIPT: "tunelab's transcript template (\"User:\\n…\\n\\nAssistant:\\n\")"}


def _as_prompt(example, tokenizer, fmt: str):
    """A chat example as the prompt/label pair that label scoring reads (its last learnt reply is
    the label), the prompt rendered as the model will read it."""
    return Example(example_prompt(example, tokenizer, fmt), example.completion, example.line, example.messages)


def _encode(plan: JobPlan, tokenizer, train_rows, valid_rows, fmt: str | None = None):
    hp = plan.hyperparameters
    sample = list(valid_rows)
    if len(sample) > VALID_SAMPLE:
        sample = random.Random(hp.seed).sample(sample, VALID_SAMPLE)
    if train_rows[0].messages is not None and plan.method == Method.LM:
        enc = lambda rows: encode_chat(tokenizer, [e.messages for e in rows], fmt, hp.max_length)
    elif plan.method == Method.CLASSIFIER:
        index = {l: i for i, l in enumerate(plan.labels)}
        enc = lambda rows: encode_classifier(tokenizer, [e.prompt for e in rows], [index[e.completion] for e in rows], hp.max_length)
    else:
        # Free-form completions end with EOS so generation learns to stop; a label does not need it.
        eos = not plan.classification
        enc = lambda rows: encode_lm(tokenizer, [e.prompt for e in rows], [e.completion for e in rows], hp.max_length, eos)
    return enc(train_rows), enc(sample) if sample else []


def _prior(train_rows, labels) -> list[float] | None:
    """Each label's share of the training rows (what logit adjustment divides out)."""
    index = {label: i for i, label in enumerate(labels)}
    gold = [index[c] for c in (getattr(e, "completion", None) for e in train_rows) if c in index]
    return class_prior(gold, len(labels)) if gold else None


def _fit_adjustment(store: Store, job: JobRecord, selector: "_EpochSelector", model, temperature: float,
                    prior: list[float]) -> tuple[float, float]:
    """Tune the post-hoc logit adjustment strength on the validation file for macro-F1 (one more
    scoring pass of the kept weights, at their temperature); returns (tau, the final temperature).

    A kept tau > 0 shifts every row by tau * log(prior) after the temperature, so a temperature fitted
    before it no longer calibrates what the Predictor reports (a 29-category model: accuracy 0.863,
    ECE 0.188). The decisions rank raw/T - tau*log(prior), i.e. raw - (T*tau)*log(prior): keeping
    T*tau fixed keeps every decision (and the macro-F1 tau was tuned for) while a temperature refitted
    on those shifted scores calibrates the distribution the Predictor reports."""
    raw = selector.score(model)
    tau, tuned, before = fit_tau(apply_temperature(raw, temperature), selector.gold_idx, prior)
    store.add_event(job.id, f"Logit adjustment: tau {tau:.1f} tuned on the validation file "
                            f"(macro-F1 {before:.4f} -> {tuned:.4f}).", data={"logit_adjustment": tau})
    if not (tau and selector.calibrate):
        return tau, temperature
    strength = temperature * tau
    shifted = adjust(raw, prior, strength)
    refit = fit_temperature(shifted, selector.gold_idx)
    store.add_event(job.id, f"Calibrated probabilities: temperature {refit:.3f} refitted on the adjusted scores "
                            f"(was {temperature:.3f}); on the refitted scale the same adjustment is tau "
                            f"{strength / refit:.2f} (= {tau:.1f} x {temperature:.3f} / {refit:.3f}), the tau that "
                            f"evaluate shows, and every decision stays as tuned; adjusted validation log-loss "
                            f"{nll(shifted, selector.gold_idx, temperature):.4f} -> "
                            f"{nll(shifted, selector.gold_idx, refit):.4f}).",
                    data={"temperature": refit, "temperature_before_adjustment": temperature,
                          "logit_adjustment": strength / refit})
    return strength / refit, refit


def _class_weights(train, n_labels: int) -> torch.Tensor:
    counts = Counter(e.label for e in train)
    total = sum(counts.values())
    return torch.tensor([total / (n_labels * counts[i]) if counts[i] else 0.0 for i in range(n_labels)],
                        dtype=torch.float32)


_HEAD_WORDS = {"cls+mean": "a linear layer on the [CLS] token and the mean of the token vectors",
               "cls": "a linear layer on the [CLS] token (Hugging Face's sequence-classification head)",
               "last": "a linear layer on the last token"}


def _meta(job: JobRecord, plan: JobPlan, lora: bool, epochs_here: int, temperature: float = 1.0,
          chat_format: str | None = None, pooling: str = "cls") -> ModelMeta:
    return ModelMeta(
        method=plan.method, kind=plan.kind, base_model=plan.base_model, labels=plan.labels, lora=lora,
        max_length=plan.hyperparameters.max_length, classification=plan.classification,
        base_learning_rate=plan.base_learning_rate, default_batch_size=plan.batch_size,
        epochs_this_job=epochs_here, job_id=job.id, temperature=temperature, chat_format=chat_format,
        pooling=pooling)


def _epoch_checkpoint(store, job, model, tokenizer, epoch, step, metrics, meta: ModelMeta, *,
                      extra: dict | None = None, keep: int | None = None) -> None:
    """Save the epoch's weights; the last KEEP_EPOCH_CHECKPOINTS stay loadable, and so does epoch
    `keep` (the best so far, which keep_best may register at the end)."""
    work = store.job_dir(job.id)
    folder = work / "checkpoints" / f"epoch-{epoch}"
    # atomic_dir removes the half-written folder first; the checkpoint row is only added after it.
    with disk_full_names(folder, f"the epoch {epoch} checkpoint"), atomic_dir(folder) as tmp:
        save_fine_tuned(model, tokenizer, tmp, meta)
    store.add_checkpoint(job.id, step=step, epoch=epoch, path=str(work / "checkpoints" / f"epoch-{epoch}"),
                         metrics={k: v for k, v in {**metrics, **(extra or {})}.items() if v is not None})
    store.add_event(job.id, f"Completed epoch {epoch}; checkpoint saved at step {step}.")
    epochs = sorted(store.list_checkpoints(job.id), key=lambda c: c.epoch)
    for old in epochs[:-KEEP_EPOCH_CHECKPOINTS]:
        if old.epoch != keep:
            _rm(Path(old.path))


class _JobControl:
    """The job's row as the loop last read it: one query a second answers both cancel and pause."""

    def __init__(self, store: Store, job: JobRecord):
        self.store, self.last = store, job

    def poll(self) -> JobRecord:
        self.last = self.store.get_job(self.last.id)
        return self.last


class _LeaseCheck:
    """Whether this worker still holds the job. During training a lost lease stops the loop the way a
    cancellation does (so that under `accelerate launch` every process stops together), and is then
    told apart from one; afterwards it stops the run before the model is registered."""

    def __init__(self, abandoned: Callable[[], bool]):
        self.abandoned = abandoned
        self.lost = False

    def check(self) -> bool:
        self.lost = self.lost or bool(self.abandoned())
        return self.lost

    def require(self) -> None:
        if self.check():
            raise JobAbandoned()


def _progress_reporter(store: Store, job_id: str, full_valid: bool = False):
    """Events for followers: every step during the first ones, then about every 2 seconds, with
    OpenAI's metric keys too. `full_valid`: the validation sample is the whole validation file."""
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
        store.add_event(job_id, msg, data={k: v for k, v in {**info, **openai_metrics(info, full_valid)}.items()
                                           if v is not None})

    return report


def openai_metrics(info: dict, full_valid: bool) -> dict:
    """A step's numbers under the keys of OpenAI's metrics events. The full_valid_* pair is given
    only when the step's validation sample is the whole validation file."""
    out = {"step": info.get("step"), "train_loss": info.get("loss"),
           "train_mean_token_accuracy": info.get("training_token_accuracy"),
           "valid_loss": info.get("validation_loss"),
           "valid_mean_token_accuracy": info.get("validation_token_accuracy")}
    if full_valid and info.get("validation_loss") is not None:
        out.update(full_valid_loss=info["validation_loss"],
                   full_valid_mean_token_accuracy=info.get("validation_token_accuracy"))
    return out


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rm(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
