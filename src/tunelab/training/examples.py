"""Length-bucketed batch order for training epochs (the token ids and padding are in
tunelab.models.encoding, shared with inference).

Dynamic padding with length buckets is most of tunelab's CPU speed-up: review-length texts average
~50 tokens, so padding every batch to a fixed 128 or 256 wastes most of the compute.
"""

from __future__ import annotations

import random


def bucketed_batches(lengths: list[int], batch_size: int, *, seed: int, epoch: int, shuffle: bool,
                     window_batches: int = 32) -> list[list[int]]:
    """Batches of example indices for one epoch, deterministic in (seed, epoch) so a resumed job
    replays the same order. Without `shuffle` the file order is kept up to windows of
    `window_batches` batches, inside which examples are sorted by length."""
    order = list(range(len(lengths)))
    rng = random.Random(seed * 1000 + epoch)
    if shuffle:
        rng.shuffle(order)
    window = batch_size * window_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start:start + window], key=lambda i: lengths[i])
        chunk_batches = [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
        rng.shuffle(chunk_batches)
        batches.extend(chunk_batches)
    return batches
