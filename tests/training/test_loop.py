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
