"""The CPU levers of the training loop (benchmarks/train_throughput.py measures them): the fused
AdamW kernel and intra-op threads chosen by runtime.CpuThreads (TUNELAB_THREADS fixes them)."""

from __future__ import annotations

import torch

from tunelab.models.encoding import Encoded
from tunelab.training import loop
from tunelab.training.config import Hyperparameters


def test_loop_uses_fused_adamw_and_the_thread_choice(tiny_models, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    monkeypatch.setenv("TUNELAB_DEVICE", "cpu")
    monkeypatch.setenv("TUNELAB_THREADS", "1")
    before = torch.get_num_threads()
    made, widths, threads = [], [], []
    real_adamw = torch.optim.AdamW

    def adamw(*args, **kwargs):
        made.append((args, kwargs))
        return real_adamw(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", adamw)
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_models.encoder), num_labels=2)
    real_forward = model.forward

    def forward(*args, **kwargs):
        widths.append(kwargs["input_ids"].shape[1])
        threads.append(torch.get_num_threads())
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", forward)
    examples = [Encoded(list(range(5, 5 + n)), 0, n % 2) for n in (3, 3, 5, 5, 9, 9, 11, 11)]
    hp = Hyperparameters(n_epochs=1, batch_size=2, learning_rate_multiplier=1.0, warmup_ratio=0.0, shuffle=True,
                         keep_best=False, early_stopping_patience=0)
    try:
        outcome = loop.train(model, loop.LoopData(train=examples, valid=[], method="classifier", pad_id=0), hp,
                             batch_size=2, learning_rate=1e-3, work_dir=tmp_path, results=None,
                             hooks=loop.LoopHooks())
    finally:
        torch.set_num_threads(before)
    assert outcome.steps == 4
    assert made and made[0][1].get("fused") is True
    # the optimizer gets loop.parameter_groups: weight decay on the weight matrices only
    assert [g["weight_decay"] for g in made[0][0][0]] == [loop.WEIGHT_DECAY, 0.0]
    assert sorted(widths) == [8, 8, 16, 16]  # length-sorted batches, widths in multiples of 8
    assert set(threads) == {1}

