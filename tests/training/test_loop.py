"""The training loop's optimizer: what it decays."""

from __future__ import annotations

from tunelab.training import loop


def test_weight_decay_reaches_weight_matrices_only(tiny_models):
    """Biases and LayerNorm/RMSNorm gains are not decayed (Trainer's rule), for the BERT encoder
    with the cls+mean head and for the Llama decoder; every trainable parameter is in one group."""
    from transformers import AutoModelForSequenceClassification

    from tunelab.models.heads import BertClsMeanForSequenceClassification

    for model in (BertClsMeanForSequenceClassification.from_pretrained(str(tiny_models.encoder), num_labels=3),
                  AutoModelForSequenceClassification.from_pretrained(str(tiny_models.decoder), num_labels=3)):
        groups = loop.parameter_groups(model, 0.01)
        names = {id(p): n for n, p in model.named_parameters()}
        decayed = [names[id(p)] for p in groups[0]["params"]]
        kept = [names[id(p)] for p in groups[1]["params"]]
        assert [g["weight_decay"] for g in groups] == [0.01, 0.0]
        assert sorted(decayed + kept) == sorted(names.values())
        assert kept and all("bias" in n or "norm" in n.lower() for n in kept)
        assert not any("bias" in n or "layernorm" in n.lower() or n.endswith("norm.weight") for n in decayed)
        assert any(n.endswith("classifier.weight") or n.endswith("score.weight") for n in decayed)


def test_a_saved_state_this_version_cannot_load_is_a_clear_error(tiny_models, tmp_path, monkeypatch):
    """A job paused under an optimizer with other parameter groups (an upgrade between pause and
    resume) fails with a typed error that says what to do, not torch's ValueError."""
    import pytest
    from transformers import AutoModelForSequenceClassification

    from tunelab.errors import ResumeStateError
    from tunelab.models.encoding import Encoded
    from tunelab.training.config import Hyperparameters

    monkeypatch.setenv("TUNELAB_DEVICE", "cpu")
    examples = [Encoded(list(range(5, 5 + n)), 0, n % 2) for n in (3, 4, 5, 6, 7, 8, 9, 10)]
    hp = Hyperparameters(n_epochs=1, batch_size=2, learning_rate_multiplier=1.0, warmup_ratio=0.0, shuffle=True,
                         keep_best=False, early_stopping_patience=0)

    def run(hooks):
        model = AutoModelForSequenceClassification.from_pretrained(str(tiny_models.encoder), num_labels=2)
        return loop.train(model, loop.LoopData(train=examples, valid=[], method="classifier", pad_id=0), hp,
                          batch_size=2, learning_rate=1e-3, work_dir=tmp_path, results=None, hooks=hooks)

    with pytest.raises(loop.Paused):
        run(loop.LoopHooks(should_pause=lambda: True))
    assert (tmp_path / "resume" / "position.json").exists()
    monkeypatch.setattr(loop, "parameter_groups",
                        lambda model, decay: [{"params": [p for p in model.parameters() if p.requires_grad],
                                               "weight_decay": decay}])
    with pytest.raises(ResumeStateError) as caught:
        run(loop.LoopHooks())
    assert "parameter groups" in str(caught.value) and "fine_tunes.create" in caught.value.render()
    assert caught.value.code == "resume_state_incompatible"
    monkeypatch.undo()
    events = []
    assert run(loop.LoopHooks(on_progress=events.append)).steps == 4
    resumed = [e for e in events if e["event"] == "resumed"]  # the same version resumes it, not restarts
    assert len(resumed) == 1 and resumed[0]["global_step"] >= 1
