"""bf16 weights with fp32 master copies (training.precision), alone and inside the loop."""

from __future__ import annotations

import pytest
import torch

from tunelab import runtime
from tunelab.models.encoding import Encoded
from tunelab.training import loop
from tunelab.training.config import Hyperparameters
from tunelab.training.precision import MasterWeights


def _encoder(tiny_models, **kw):
    from tunelab.models.heads import BertClsMeanForSequenceClassification

    return BertClsMeanForSequenceClassification.from_pretrained(str(tiny_models.encoder), num_labels=3, **kw)


def test_the_model_goes_bf16_and_the_copies_keep_the_exact_fp32_values(tiny_models):
    model = _encoder(tiny_models)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.dtype for n, b in model.named_buffers()}
    frozen = model.bert.embeddings.word_embeddings.weight
    frozen.requires_grad_(False)
    groups = loop.parameter_groups(model, 0.01)
    masters = MasterWeights(model, groups)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert {n: b.dtype for n, b in model.named_buffers()} == buffers  # buffers (positions, frequencies) untouched
    assert all(m.dtype == torch.float32 for m in masters.masters)
    assert all(p is not frozen for p in masters.params) and len(masters.masters) == sum(len(g["params"]) for g in groups)
    assert [g["weight_decay"] for g in masters.master_groups] == [g["weight_decay"] for g in groups]
    names = {id(p): n for n, p in model.named_parameters()}
    for p, m in zip(masters.params, masters.masters):
        assert torch.equal(m, before[names[id(p)]])
    with masters.fp32_model() as exact:
        assert exact is model
        for n, p in model.named_parameters():  # trained and frozen weights alike: not their bf16 rounding
            assert p.dtype == torch.float32 and torch.equal(p, before[n]), n
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert [id(p) for p in model.parameters()] == list(names)  # the optimizer's objects, still the model's


def test_updates_below_bf16_precision_add_up_in_the_copies(tiny_models):
    model = _encoder(tiny_models)
    masters = MasterWeights(model, loop.parameter_groups(model, 0.0))
    bias = model.classifier.bias
    index = next(i for i, p in enumerate(masters.params) if p is bias)
    with torch.no_grad():
        masters.masters[index].fill_(1.0)
    masters.masters_to_model()
    optimizer = torch.optim.SGD(masters.master_groups, lr=1e-3)
    for _ in range(20):  # each step moves 1.0 by 1e-3, under half of bf16's spacing of 2**-7 there
        model.zero_grad()
        (bias.float().sum() + sum(p.float().sum() * 0 for p in model.parameters())).backward()
        masters.grads_to_masters()
        assert all(p.grad is None for p in model.parameters())
        optimizer.step()
        masters.masters_to_model()
    assert masters.masters[index][0].item() == pytest.approx(0.98, abs=1e-6)
    assert bias[0].item() == pytest.approx(0.98, abs=4e-3)  # bf16 itself would have stayed at 1.0
    assert bias.dtype == torch.bfloat16


def test_a_parameter_without_a_gradient_is_skipped_not_decayed(tiny_models):
    model = _encoder(tiny_models)
    masters = MasterWeights(model, loop.parameter_groups(model, 0.5))
    optimizer = torch.optim.AdamW(masters.master_groups, lr=0.1)
    head = model.classifier.weight
    before = {id(p): m.clone() for p, m in zip(masters.params, masters.masters)}
    head.float().sum().backward()
    masters.grads_to_masters()
    optimizer.step()
    moved = [p is head for p, m in zip(masters.params, masters.masters) if not torch.equal(m, before[id(p)])]
    assert moved == [True]


def test_the_copies_round_trip_through_a_state_dict_and_refuse_another_model(tiny_models):
    a, b = _encoder(tiny_models), _encoder(tiny_models)
    ma, mb = MasterWeights(a, loop.parameter_groups(a, 0.0)), MasterWeights(b, loop.parameter_groups(b, 0.0))
    with torch.no_grad():
        ma.masters[0].add_(0.123)
    mb.load_state_dict(ma.state_dict())
    assert all(torch.equal(x, y) for x, y in zip(ma.masters, mb.masters))
    assert torch.equal(b.get_parameter(_name(b, mb.params[0])), ma.masters[0].to(torch.bfloat16))
    with pytest.raises(ValueError, match="do not match"):
        mb.load_state_dict({"masters": ma.state_dict()["masters"][:-1]})


def _name(model, param) -> str:
    return next(n for n, p in model.named_parameters() if p is param)


EXAMPLES = [Encoded(list(range(5, 5 + n)), 0, n % 3) for n in (3, 4, 5, 6, 7, 8, 9, 10)]
HP = Hyperparameters(n_epochs=2, batch_size=2, learning_rate_multiplier=1.0, warmup_ratio=0.0, shuffle=True,
                     keep_best=False, early_stopping_patience=0)


def _train(tiny_models, work, hooks):
    torch.manual_seed(0)
    model = _encoder(tiny_models)
    return loop.train(model, loop.LoopData(train=EXAMPLES, valid=EXAMPLES[:2], method="classifier", pad_id=0),
                      HP, batch_size=2, learning_rate=1e-3, work_dir=work, results=None, hooks=hooks)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """The loop with TUNELAB_PRECISION=bf16 on a CPU that has native bf16, whatever CPU runs the test."""
    monkeypatch.setenv("TUNELAB_DEVICE", "cpu")
    monkeypatch.setenv("TUNELAB_PRECISION", "bf16")
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)


def test_the_loop_trains_bf16_weights_and_hands_back_and_saves_exact_fp32_ones(tiny_models, tmp_path, bf16_cpu):
    torch.manual_seed(0)
    model = _encoder(tiny_models)
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    seen, in_steps = [], set()
    hooks = loop.LoopHooks(on_epoch_end=lambda epoch, step, row: seen.append({p.dtype for p in model.parameters()}),
                           on_progress=lambda info: in_steps.update(p.dtype for p in model.parameters()))
    out = loop.train(model, loop.LoopData(train=EXAMPLES, valid=[], method="classifier", pad_id=0), HP,
                     batch_size=2, learning_rate=1e-3, work_dir=tmp_path, results=None, hooks=hooks)
    assert in_steps == {torch.bfloat16}
    assert seen == [{torch.float32}, {torch.float32}]  # an epoch's checkpoint sees the exact weights
    assert {p.dtype for p in out.model.parameters()} == {torch.float32}
    weights = torch.cat([p.detach().flatten() for p in out.model.parameters()])
    assert not torch.equal(weights, weights.to(torch.bfloat16).float())  # fp32 values, not bf16 roundings
    assert any(not torch.equal(p, start[n]) for n, p in out.model.named_parameters())


def test_a_paused_job_resumes_from_the_exact_copies(tiny_models, tmp_path, bf16_cpu, monkeypatch):
    with pytest.raises(loop.Paused):  # after the first step: the pause is asked for once a second
        _train(tiny_models, tmp_path, loop.LoopHooks(should_pause=lambda: True))
    saved = torch.load(tmp_path / "resume" / "custom_checkpoint_0.pkl", weights_only=False)["masters"]
    flat = torch.cat([m.flatten() for m in saved])
    assert flat.dtype == torch.float32 and not torch.equal(flat, flat.to(torch.bfloat16).float())
    loaded = []
    original = MasterWeights.load_state_dict

    def spy(self, state):
        original(self, state)
        loaded.append([m.clone() for m in self.masters])

    monkeypatch.setattr(MasterWeights, "load_state_dict", spy)
    resumed = _train(tiny_models, tmp_path, loop.LoopHooks())
    assert len(loaded) == 1 and all(torch.equal(a, b) for a, b in zip(loaded[0], saved))
    assert resumed.steps == 8 and {p.dtype for p in resumed.model.parameters()} == {torch.float32}


def test_a_state_saved_without_copies_is_a_clear_error(tiny_models, tmp_path, bf16_cpu, monkeypatch):
    from tunelab.errors import ResumeStateError

    monkeypatch.delenv("TUNELAB_PRECISION")
    with pytest.raises(loop.Paused):
        _train(tiny_models, tmp_path, loop.LoopHooks(should_pause=lambda: True))
    monkeypatch.setenv("TUNELAB_PRECISION", "bf16")
    with pytest.raises(ResumeStateError):
        _train(tiny_models, tmp_path, loop.LoopHooks())
