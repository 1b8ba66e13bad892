"""Token ids for prompt/completion examples, and padded batches of them, for both methods.

Training and inference share this so that a label is the same tokens in a training step and in
label scoring (` 4` must not be tokenized one way for the loss and another way for evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


# No token of the tokenizers tunelab serves spans more characters than this (byte-level BPE and
# WordPiece tokens are a word piece or a short run of spaces), so the first N tokens of a text lie
# within its first N * MAX_CHARS_PER_TOKEN characters. Tokenizing costs time and memory in
# proportion to the whole text, so text beyond that is cut before tokenizing: a 10 MB prompt is
# truncated in microseconds instead of being tokenized for seconds and then truncated.
MAX_CHARS_PER_TOKEN = 20


def clip_text(text: str, max_tokens: int, *, keep: str = "start") -> str:
    """The part of `text` that can hold its first (keep="start") or last (keep="end") `max_tokens`
    tokens. Only text whose tokens average more than MAX_CHARS_PER_TOKEN characters (thousands
    of spaces in a row) keeps fewer tokens than tokenizing it all and truncating would."""
    limit = max(1, max_tokens) * MAX_CHARS_PER_TOKEN
    if len(text) <= limit:
        return text
    return text[:limit] if keep == "start" else text[-limit:]


def count_tokens(tokenizer, text: str, max_positions: int | None) -> int:
    """Tokens in `text` (no special tokens). Exact up to `max_positions` * MAX_CHARS_PER_TOKEN
    characters, which is more than any prompt that fits the model; beyond that, a lower bound that
    is still more than the model can read, found without tokenizing the whole text."""
    if max_positions and len(text) > max_positions * MAX_CHARS_PER_TOKEN:
        clipped = len(tokenizer(clip_text(text, max_positions), add_special_tokens=False)["input_ids"])
        return max(clipped, len(text) // MAX_CHARS_PER_TOKEN)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass
class Encoded:
    input_ids: list[int]
    n_completion: int  # lm: trailing tokens from the first learnt one; classifier: 0
    label: int  # classifier: class index; lm: -1
    weights: list[int] | None = None
    """Chat conversations: 1 for each learnt token (assistant messages), 0 for the others, so that
    several turns can be learnt; None: the last `n_completion` tokens are learnt."""


HEAD_SHARE = 0.25
"""A classifier's prompt longer than max_length keeps this share of its tokens from the start and
the rest from the end: a review's verdict is often its last sentence ("Returned it."), and the
separator that ends every prompt stays in. Head + tail truncation (Sun et al. 2019, "How to
Fine-Tune BERT for Text Classification") beat both head-only and tail-only on long reviews."""


def encode_classifier(tokenizer, prompts: list[str], label_ids: list[int], max_length: int) -> list[Encoded]:
    if getattr(tokenizer, "truncation_side", "right") == "left":  # a chat transcript: its latest turns
        prompts = [clip_text(p, max_length, keep="end") for p in prompts]
        enc = tokenizer(prompts, truncation=True, max_length=max_length, add_special_tokens=True)
        return [Encoded(ids, 0, y) for ids, y in zip(enc["input_ids"], label_ids)]
    return [Encoded(ids, 0, y) for ids, y in zip(_head_and_tail(tokenizer, prompts, max_length), label_ids)]


def _head_and_tail(tokenizer, prompts: list[str], max_length: int) -> list[list[int]]:
    probe, bare = (tokenizer("x", add_special_tokens=flag)["input_ids"] for flag in (True, False))
    n_prefix = next((i for i in range(len(probe) - len(bare) + 1) if probe[i:i + len(bare)] == bare), 0)
    n_suffix = len(probe) - n_prefix - len(bare)
    body = max(1, max_length - n_prefix - n_suffix)
    head = int(body * HEAD_SHARE)
    tail = body - head
    # Text beyond what the head and the tail can hold is cut before tokenizing (see clip_text);
    # the two ends are tokenized apart so that the cut cannot change either end's tokens.
    limit = body * MAX_CHARS_PER_TOKEN
    short = [i for i, p in enumerate(prompts) if len(p) <= 2 * limit]
    long = [i for i, p in enumerate(prompts) if len(p) > 2 * limit]
    out: list[list[int]] = [[] for _ in prompts]
    if short:
        for i, ids in zip(short, tokenizer([prompts[i] for i in short], add_special_tokens=True)["input_ids"]):
            out[i] = ids if len(ids) <= max_length else ids[:n_prefix + head] + ids[len(ids) - n_suffix - tail:]
    for i in long:
        start = tokenizer(prompts[i][:limit], add_special_tokens=True)["input_ids"]
        end = tokenizer(prompts[i][-limit:], add_special_tokens=True)["input_ids"]
        out[i] = start[:n_prefix + head] + end[max(0, len(end) - n_suffix - tail):]
    return out


def encode_lm(tokenizer, prompts: list[str], completions: list[str], max_length: int,
              append_eos: bool) -> list[Encoded]:
    """Prompt and completion are tokenized apart and joined, so ` 4` is the same tokens in
    training and in label scoring. Over-long prompts lose their start, never the completion."""
    p_ids = tokenizer([clip_text(p, max_length, keep="end") for p in prompts], add_special_tokens=True)["input_ids"]
    c_ids = tokenizer([clip_text(c, max_length) for c in completions], add_special_tokens=False)["input_ids"]
    eos = [tokenizer.eos_token_id] if append_eos and tokenizer.eos_token_id is not None else []
    out = []
    for p, c in zip(p_ids, c_ids):
        c = (c + eos)[: max_length - 1]
        p = p[-(max_length - len(c)):]
        out.append(Encoded(p + c, len(c), -1))
    return out


def collate(items: list[Encoded], pad_id: int, *, left_pad: bool, multiple: int = 8) -> dict[str, torch.Tensor]:
    """Left padding for causal LMs puts every completion at the end of its row, so the loss needs
    logits only for the last few positions of the batch."""
    # Widths in multiples of `multiple` (8 by default): fewer distinct shapes (bf16 kernels are slow
    # on the first call at each new shape, notably on GPUs) at the cost of a few pad tokens.
    width = -(-max(len(e.input_ids) for e in items) // multiple) * multiple
    # Rows are filled in numpy: assigning a list to a numpy row is about 5x faster than a
    # torch.tensor per row, which showed as the host's time per step on a GPU.
    ids = np.full((len(items), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(items), width), dtype=np.int64)
    for row, e in enumerate(items):
        n = len(e.input_ids)
        sl = slice(width - n, width) if left_pad else slice(0, n)
        ids[row, sl] = e.input_ids
        mask[row, sl] = 1
    ids, mask = torch.from_numpy(ids), torch.from_numpy(mask)
    batch = {"input_ids": ids, "attention_mask": mask}
    if left_pad:
        batch["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    if any(e.weights is not None for e in items):
        learnt = torch.zeros((len(items), width), dtype=torch.long)
        for row, e in enumerate(items):
            n = len(e.input_ids)
            weights = e.weights if e.weights is not None else [0] * (n - e.n_completion) + [1] * e.n_completion
            learnt[row, slice(width - n, width) if left_pad else slice(0, n)] = torch.tensor(weights, dtype=torch.long)
        batch["loss_mask"] = learnt
    batch["labels"] = torch.tensor([e.label for e in items], dtype=torch.long)
    batch["n_completion"] = torch.tensor([e.n_completion for e in items], dtype=torch.long)
    # A host-side int: the loss needs it to slice logits, and reading it from the device copy of
    # n_completion would wait for the GPU on every step.
    batch["max_completion"] = max(e.n_completion for e in items)
    return batch


def model_inputs(batch: dict) -> dict:
    """The keys of a collated batch that the model's forward takes (labels and n_completion are
    for the loss, which is computed outside the model)."""
    return {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
