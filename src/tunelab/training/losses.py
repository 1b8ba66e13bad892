"""Per-batch loss and accuracies for the two methods. One code path each, used for training
steps and validation rows alike."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tunelab.models.encoding import model_inputs


@dataclass
class BatchResult:
    """Counts stay tensors on the model's device: reading them back forces a device sync, which the
    loop does once per block of steps, not per step."""

    loss: torch.Tensor
    n_tokens: int | torch.Tensor  # tokens the loss counted (completion tokens, or labels for the classifier)
    token_correct: int | torch.Tensor
    seq_correct: int | torch.Tensor
    n_seqs: int


def classifier_step(model, batch: dict, class_weights: torch.Tensor | None = None,
                    logit_offsets: torch.Tensor | None = None) -> BatchResult:
    """`logit_offsets`: tau * log(prior) per label, added to the logits inside the loss only (the
    logit-adjusted loss of Menon et al. 2021); accuracy counts the model's own argmax."""
    logits = model(**model_inputs(batch)).logits.float()
    labels = batch["labels"]
    trained = logits + logit_offsets if logit_offsets is not None else logits
    loss = F.cross_entropy(trained, labels, weight=class_weights)
    correct = (logits.argmax(-1) == labels).sum()
    n = len(labels)
    return BatchResult(loss, n, correct, correct, n)


def lm_step(model, batch: dict, prompt_loss_weight: float = 0.0) -> BatchResult:
    """Causal-LM loss on left-padded rows. With no prompt loss, only the last `max completion + 1`
    positions get full-vocabulary logits (`logits_to_keep`), which is most of a step's cost."""
    ids, mask, n_comp = batch["input_ids"], batch["attention_mask"], batch["n_completion"]
    width = ids.shape[1]
    max_completion = batch.get("max_completion")
    if max_completion is None:
        max_completion = int(n_comp.max())
    keep = width if prompt_loss_weight > 0 else int(max_completion) + 1
    logits = model(**model_inputs(batch), logits_to_keep=keep).logits
    # logits[:, j] predicts token at absolute position width - keep + j + 1
    pred = logits[:, :-1].float()
    targets = ids[:, width - keep + 1:]
    tmask = mask[:, width - keep + 1:].float()
    positions = torch.arange(width - keep + 1, width, device=ids.device)
    is_completion = positions.unsqueeze(0) >= (width - n_comp).unsqueeze(1)
    if "loss_mask" in batch:  # chat: only the learnt assistant tokens inside the completion span
        is_completion = batch["loss_mask"][:, width - keep + 1:] > 0
    weights = torch.where(is_completion, torch.ones_like(tmask), torch.full_like(tmask, prompt_loss_weight)) * tmask
    nll = F.cross_entropy(pred.reshape(-1, pred.shape[-1]), targets.reshape(-1), reduction="none").view_as(weights)
    loss = (nll * weights).sum() / weights.sum().clamp(min=1e-8)
    comp = is_completion & (tmask > 0)
    hit = (pred.argmax(-1) == targets) & comp
    token_correct = hit.sum()
    n_tokens = comp.sum()
    seq_correct = (hit | ~comp).all(-1).sum()
    return BatchResult(loss, n_tokens, token_correct, seq_correct, len(ids))
