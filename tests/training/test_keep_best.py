"""Best-epoch selection and early stopping (runner._EpochSelector), and a continued job that keeps
its starting point when training only makes it worse."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from tunelab.store import Store
from tunelab.training.config import ClassificationOptions
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import _EpochSelector, run_job


class FakeStore:
    def __init__(self):
        self.events = []

    def add_event(self, job_id, message, **kwargs):
        self.events.append(message)

    def list_checkpoints(self, job_id):
        return []


def selector(patience=2, n_epochs=6, n_valid=1):
    hp = SimpleNamespace(keep_best=True, early_stopping_patience=patience, calibrate=False, max_length=64)
    plan = SimpleNamespace(hyperparameters=hp, classification=False, n_epochs=n_epochs,
                           method=SimpleNamespace(value="classifier"))
    rows = [SimpleNamespace(prompt="p", completion=" 1")] * n_valid
    return _EpochSelector(FakeStore(), SimpleNamespace(id="ftjob-x"), plan, None, rows, None, 16)


def test_keeps_the_best_epoch_and_stops_after_patience():
    sel = selector(patience=2)
    stops = []
    for epoch, loss in enumerate([1.0, 0.8, 0.85, 0.9, 0.7], start=1):
        sel.record(epoch, {"validation_loss": loss})
        stops.append(sel.should_stop(epoch))
    # epoch 4 is two epochs after the best one (2): stop there
    assert stops == [False, False, False, True, False]
    assert sel.best_epoch == 5  # epoch 5 only exists if the caller ignored the stop
    assert any("best so far" in e for e in sel.store.events)


def test_ties_keep_the_earlier_epoch_and_zero_patience_never_stops():
    sel = selector(patience=0)
    for epoch, loss in enumerate([0.5, 0.5, 0.9], start=1):
        sel.record(epoch, {"validation_loss": loss})
        assert not sel.should_stop(epoch)
    assert sel.best_epoch == 1
    assert sel.kept_message(1, 3).startswith("Kept epoch 1 of 3")


@pytest.fixture
def store(tunelab_home) -> Store:
    return Store()


def _run(store, train, model, valid, **hp):
    create_job(store, JobRequest(str(train), model, str(valid), {"eval_every": 1000, **hp},
                                 ClassificationOptions(True, 5)))
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    return job


def _rotated(src, dst):
    """The same prompts with every label moved one star up: training on it can only hurt."""
    import json

    rows = [json.loads(line) for line in open(src)]
    with open(dst, "w") as fh:
        for row in rows:
            row["completion"] = f" {int(row['completion']) % 5 + 1}"
            fh.write(json.dumps(row) + "\n")
    return dst


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_continued_training_that_only_hurts_keeps_the_parent(store, tiny_models, tmp_path):
    parent = _run(store, tiny_models.train, str(tiny_models.encoder), tiny_models.valid,
                  n_epochs=3, learning_rate_multiplier=50)
    parent_meta = store.find_model(parent.fine_tuned_model).meta
    assert parent_meta["temperature"] > 0 and parent_meta["kept_epoch"] in (1, 2, 3)
    # Wrong labels at a high rate undo what the parent learnt: every epoch scores worse than the start.
    wrong = _rotated(tiny_models.train, tmp_path / "wrong.jsonl")
    child = _run(store, wrong, parent.fine_tuned_model, tiny_models.valid, n_epochs=3,
                 learning_rate_multiplier=100, early_stopping_patience=1)
    messages = [e.message for e in store.list_events(child.id)]
    assert any(m.startswith("Starting point (the parent's weights)") for m in messages)
    assert any(m.startswith("Kept the starting point") for m in messages), messages
    assert any(m.startswith("Stopped early after epoch 1 of 3") for m in messages), messages
    record = store.find_model(child.fine_tuned_model)
    assert record.meta["kept_epoch"] == 0 and record.parent_id == parent.fine_tuned_model
    assert record.cumulative_epochs == store.find_model(parent.fine_tuned_model).cumulative_epochs
    assert record.labels == store.find_model(parent.fine_tuned_model).labels


def test_accuracy_ranks_first_and_log_loss_breaks_ties():
    sel = selector(n_valid=1099)
    # SST-5's case: epoch 2 had the lower log-loss, epoch 3 the higher accuracy; epoch 3 is kept
    sel.history = {1: {"score": 1.220, "accuracy": 0.468, "temperature": 1.1},
                   2: {"score": 1.181, "accuracy": 0.473, "temperature": 1.3},
                   3: {"score": 1.184, "accuracy": 0.491, "temperature": 1.6}}
    assert sel.best_epoch == 3
    sel.history[4] = {"score": 1.150, "accuracy": 0.491, "temperature": 1.7}
    assert sel.best_epoch == 4  # the same accuracy after more training
    sel.history[5] = {"score": 1.190, "accuracy": 0.440, "temperature": 1.7}
    assert sel.best_epoch == 4  # a drop larger than the noise: over-fitting
    assert sel.kept_message(4, 5) == "Kept epoch 4 of 5: the best on the validation file (accuracy 0.4910, log-loss 1.1500)."


def test_accuracy_differences_within_the_noise_are_ties_that_the_latest_epoch_wins():
    """SST-5, seeds 7 and 13: 0.486 / 0.479 / 0.480 and 0.460 / 0.481 / 0.482 on 1,099 validation
    sentences (standard error 0.015); epoch 3, the whole schedule, scored best on the test split."""
    sel = selector(n_valid=1099)
    sel.history = {1: {"score": 1.1917, "accuracy": 0.4859, "temperature": 1.2},
                   2: {"score": 1.1640, "accuracy": 0.4786, "temperature": 1.4},
                   3: {"score": 1.1764, "accuracy": 0.4795, "temperature": 1.6}}
    assert sel.best_epoch == 3
    large = selector(n_valid=100_000)  # the same gaps on 100,000 rows are real: accuracy decides
    large.history = dict(sel.history)
    assert large.best_epoch == 1
    seed42 = selector(n_valid=1099)  # a 2-point lead is more than the noise
    seed42.history = {1: {"score": 1.25, "accuracy": 0.466, "temperature": 1.0},
                      2: {"score": 1.18, "accuracy": 0.507, "temperature": 1.3},
                      3: {"score": 1.19, "accuracy": 0.487, "temperature": 1.5}}
    assert seed42.best_epoch == 2
    # A continued job: the latest tied epoch must beat the starting point outright, else the most
    # accurate epoch may, else the starting point stays.
    sel.history[0] = {"score": 1.17, "accuracy": 0.470, "temperature": 1.0}
    assert sel.best_epoch == 3
    sel.history[0] = {"score": 1.17, "accuracy": 0.482, "temperature": 1.0}
    assert sel.best_epoch == 1
    sel.history[0] = {"score": 1.17, "accuracy": 0.490, "temperature": 1.0}
    assert sel.best_epoch == 0


def test_a_resumed_continuation_scores_its_starting_point_again_without_repeating_the_event():
    import numpy as np

    hp = SimpleNamespace(keep_best=True, early_stopping_patience=2, calibrate=False, max_length=64)
    plan = SimpleNamespace(hyperparameters=hp, classification=True, n_epochs=3,
                           method=SimpleNamespace(value="classifier"))
    rows = [SimpleNamespace(prompt="p", completion=" 1"), SimpleNamespace(prompt="q", completion=" 2")]
    sel = _EpochSelector(FakeStore(), SimpleNamespace(id="ftjob-x"), plan, [" 1", " 2"], rows, None, 16)
    sel.score = lambda model: np.log(np.array([[0.8, 0.2], [0.3, 0.7]]))
    sel.score_start(object())
    assert sel.store.events[0].startswith("Starting point (the parent's weights)")
    resumed = _EpochSelector(FakeStore(), SimpleNamespace(id="ftjob-x"), plan, [" 1", " 2"], rows, None, 16)
    resumed.score = sel.score
    resumed.score_start(object(), announce=False)
    assert resumed.store.events == [] and resumed.history[0]["accuracy"] == 1.0
