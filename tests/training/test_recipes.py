"""The "auto" recipe (training/recipes.py): the rule's values, explicit values winning, how a job
stores and shows what was resolved, the learning-rate schedule's shape, and the gentler schedule
of continued training."""

from __future__ import annotations

import pytest
import torch

from tunelab.errors import InvalidInputError
from tunelab.store import Store
from tunelab.training import recipes
from tunelab.training.config import ClassificationOptions, Hyperparameters
from tunelab.training.loop import make_scheduler
from tunelab.training.plan import JobPlan
from tunelab.training.planning import JobRequest, create_job


@pytest.fixture
def store(tunelab_home) -> Store:
    return Store()


@pytest.mark.parametrize("n,epochs", [(45_000, 2), (15_846, 2), (8_544, 3), (1_200, 6), (300, 6), (60_000, 1),
                                      (200_000, 1), (12_000, 2), (10_000, 3)])
def test_epochs_follow_the_examples_seen_budget(n, epochs):
    assert recipes.auto_epochs(n) == epochs
    seen = n * epochs
    assert seen <= recipes.MAX_EXAMPLES_SEEN or epochs == 1
    assert seen >= recipes.MIN_EXAMPLES_SEEN or epochs == recipes.MAX_EPOCHS


def test_continuing_gets_half_the_epochs_rounded_up():
    assert recipes.auto_epochs(45_000, continuing=True) == 1
    assert recipes.auto_epochs(8_544, continuing=True) == 2
    assert recipes.auto_epochs(1_200, continuing=True) == 3


def test_every_auto_field_is_resolved_and_listed():
    recipe = recipes.resolve(Hyperparameters(), n_train=15_846, n_valid=2_000, model_batch=32, continuing=False)
    hp = recipe.hyperparameters
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier, hp.warmup_ratio) == (2, 32, 0.5, 0.06)
    assert hp.shuffle is True and hp.keep_best is True and hp.early_stopping_patience == 2
    assert set(recipe.auto) == set(Hyperparameters().auto_fields())
    assert "n_epochs=2 (auto)" in recipe.describe() and "shuffled each epoch (auto)" in recipe.describe()


def test_explicit_values_win():
    hp = Hyperparameters(n_epochs=5, batch_size=8, learning_rate_multiplier=2.0, warmup_ratio=0.1, shuffle=False,
                         keep_best=False, early_stopping_patience=0)
    recipe = recipes.resolve(hp, n_train=45_000, n_valid=100, model_batch=32, continuing=True)
    out = recipe.hyperparameters
    assert (out.n_epochs, out.batch_size, out.learning_rate_multiplier, out.warmup_ratio) == (5, 8, 2.0, 0.1)
    assert out.shuffle is False and out.keep_best is False and out.early_stopping_patience == 0
    assert recipe.auto == [] and "(auto)" not in recipe.describe()


def test_small_files_get_smaller_batches_and_no_validation_means_no_keep_best():
    hp = recipes.resolve(Hyperparameters(), n_train=100, n_valid=0, model_batch=32, continuing=False).hyperparameters
    assert hp.batch_size == 8 and hp.n_epochs == 6  # at least 150 steps in all, batch not below 8
    assert hp.keep_best is False
    assert recipes.auto_batch_size(60, 32, 6) == 7  # and at least 8 steps per epoch


@pytest.mark.parametrize("n,epochs,batch", [(1_200, 1, 8), (1_200, 6, 32), (300, 1, 8), (15_846, 2, 32),
                                            (3_000, 1, 20)])
def test_short_jobs_get_enough_steps(n, epochs, batch):
    assert recipes.auto_batch_size(n, 32, epochs) == batch


def test_continuing_lowers_the_peak_and_skips_the_warm_up():
    hp = recipes.resolve(Hyperparameters(n_epochs=3), n_train=1_200, n_valid=200, model_batch=16,
                         continuing=True).hyperparameters
    assert hp.learning_rate_multiplier == recipes.LR_MULTIPLIER_CONTINUE < recipes.LR_MULTIPLIER_NEW
    assert hp.warmup_ratio == 0.0 and hp.batch_size == 16 and hp.n_epochs == 3


def test_auto_is_accepted_as_a_word_and_only_where_it_means_something():
    hp = Hyperparameters.from_dict({"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"})
    assert hp.n_epochs is None and hp.batch_size is None and hp.learning_rate_multiplier is None
    with pytest.raises(InvalidInputError):
        Hyperparameters.from_dict({"seed": "auto"})


def _lrs(hp: Hyperparameters, n_total: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = make_scheduler(optimizer, hp, n_total)
    out = []
    for _ in range(n_total):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_schedule_warms_up_linearly_then_decays_to_zero():
    lrs = _lrs(Hyperparameters(warmup_ratio=0.1, lr_schedule="linear"), 100)
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5) and lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # monotone decay after the peak
    assert lrs[-1] == pytest.approx(1 / 90, abs=1e-6)
    cosine = _lrs(Hyperparameters(warmup_ratio=0.1, lr_schedule="cosine"), 100)
    assert cosine[10] == pytest.approx(1.0) and cosine[55] == pytest.approx(0.5, abs=0.02) and cosine[-1] < 0.01


def test_continued_schedule_starts_at_its_lower_peak():
    lrs = _lrs(Hyperparameters(warmup_ratio=0.0), 40)
    assert lrs[0] == pytest.approx(1.0) and lrs[20] == pytest.approx(0.5) and lrs[-1] == pytest.approx(1 / 40)


def test_a_planned_job_stores_resolved_values_and_says_which_were_auto(store, tiny_models):
    job, _ = create_job(store, JobRequest(str(tiny_models.train), str(tiny_models.encoder), str(tiny_models.valid),
                                          {"n_epochs": 3}, ClassificationOptions(True, 5)))
    plan = JobPlan.from_job(job)
    hp = plan.hyperparameters
    assert hp.n_epochs == 3 and hp.batch_size == 8 and hp.learning_rate_multiplier == 0.5
    assert hp.shuffle is True and hp.keep_best is True and hp.warmup_ratio == 0.06
    assert "n_epochs" not in plan.auto_hyperparameters and "batch_size" in plan.auto_hyperparameters
    assert plan.learning_rate == pytest.approx(plan.base_learning_rate * 0.5)
    messages = [e.message for e in store.list_events(job.id)]
    assert any(m.startswith("Hyperparameters: n_epochs=3, batch_size=8 (auto)") for m in messages)
    from tunelab.jobs import views

    assert views.job_view(job)["hyperparameters"] == {"batch_size": 8, "learning_rate_multiplier": 0.5,
                                                      "n_epochs": 3}
    assert views.legacy_job_view(store, job)["hyperparams"]["n_epochs"] == 3


def test_keep_best_needs_a_validation_file(store, tiny_models):
    with pytest.raises(InvalidInputError) as exc:
        create_job(store, JobRequest(str(tiny_models.train), str(tiny_models.encoder), None, {"keep_best": True}))
    assert any("keep_best needs a validation file" in p for p in exc.value.problems)


def test_old_rows_without_auto_keep_their_old_defaults():
    from tunelab.store.records import JobRecord

    fields = {f: None for f in JobRecord.__dataclass_fields__}
    fields.update(id="ftjob-x", model="m", base_model="m", method="classifier", hyperparams={"n_epochs": 2},
                  options={"base_learning_rate": 1e-4})
    plan = JobPlan.from_job(JobRecord(**fields))
    hp = plan.hyperparameters
    assert hp.n_epochs == 2 and hp.learning_rate_multiplier == 1.0 and hp.shuffle is False and hp.keep_best is False
