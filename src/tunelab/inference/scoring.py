"""Score every label of a classification model: log P(label | prompt) for each prompt.

- classifier models: log-softmax of the head's logits (labels are the head's classes);
- lm models: the sum of the label's token log-probabilities after the prompt, so a label that the
  tokenizer splits (SmolLM2 makes ` 4` a space token and a digit) is scored as a whole.
The training loop's validation and `tunelab evaluate`/`complete`/the server all call this.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from tunelab.models.encoding import Encoded, collate, encode_classifier, encode_lm, model_inputs
from tunelab.runtime import autocast
from tunelab.models.meta import Method


@torch.inference_mode()
def score_labels(model, tokenizer, method: str, prompts: list[str], labels: list[str], *,
                 batch_size: int = 32, max_length: int = 256,
                 progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Returns an array [len(prompts), len(labels)] of natural-log probabilities."""
    model.eval()
    dev = next(model.parameters()).device
    if method == Method.CLASSIFIER:
        encoded = encode_classifier(tokenizer, prompts, [0] * len(prompts), max_length)
        out = np.zeros((len(prompts), len(labels)), dtype=np.float64)
        for idx, batch in _batches(encoded, batch_size, tokenizer, left_pad=False, dev=dev):
            with autocast(dev):
                logits = model(**model_inputs(batch)).logits.float()
            out[idx] = torch.log_softmax(logits, -1).cpu().numpy()
            if progress:
                progress(len(idx))
        return out
    return _score_lm(model, tokenizer, prompts, labels, batch_size, max_length, dev, progress)


def _score_lm(model, tokenizer, prompts, labels, batch_size, max_length, dev, progress) -> np.ndarray:
    n, k = len(prompts), len(labels)
    pairs_p = [p for p in prompts for _ in labels]
    pairs_c = [c for _ in prompts for c in labels]
    encoded = encode_lm(tokenizer, pairs_p, pairs_c, max_length, append_eos=False)
    flat = np.zeros(n * k, dtype=np.float64)
    done_prompts = pairs_done = 0
    for idx, batch in _batches(encoded, batch_size * max(1, min(k, 4)), tokenizer, left_pad=True, dev=dev):
        ids, n_comp = batch["input_ids"], batch["n_completion"]
        width = ids.shape[1]
        keep = int(batch["max_completion"]) + 1
        with autocast(dev):
            logits = model(**model_inputs(batch), logits_to_keep=keep).logits
        logp = torch.log_softmax(logits[:, :-1].float(), -1)
        targets = ids[:, width - keep + 1:]
        tok = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        positions = torch.arange(width - keep + 1, width, device=ids.device)
        is_comp = positions.unsqueeze(0) >= (width - n_comp).unsqueeze(1)
        flat[idx] = (tok * is_comp).sum(-1).cpu().numpy()
        pairs_done += len(idx)
        if progress and pairs_done // k > done_prompts:
            progress(pairs_done // k - done_prompts)
            done_prompts = pairs_done // k
    return flat.reshape(n, k)


def _batches(encoded: list[Encoded], batch_size: int, tokenizer, *, left_pad: bool, dev):
    """In length order (less padding), yielding the original indices with each batch."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].input_ids))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = collate([encoded[i] for i in idx], pad, left_pad=left_pad)
        yield np.array(idx), {k: (v.to(dev) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
