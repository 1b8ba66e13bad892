"""How many tokens a model can read at once, from its config.json, without loading it.

A local model folder may allow fewer positions than the default max_length (256): a BERT built with
max_position_embeddings=128, say. Its job used to fail at the first review longer than that, mid-
training, with "The expanded size of the tensor ... must match the existing size"; planning now
lowers max_length to what the model reads and says so.
"""

from __future__ import annotations

import json
from pathlib import Path

# These number positions from padding_idx + 1 (Hugging Face's create_position_ids_from_input_ids), so
# the first padding_idx + 1 of their max_position_embeddings are never a token's.
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod",
                     "roberta-prelayernorm", "bart", "mbart", "ibert", "luke", "mpnet"}
BATCH_MULTIPLE = 8
"""Batches are padded to a multiple of 8 tokens (models.encoding.collate), so the limit is one too."""


def position_limit(folder: Path | str) -> int | None:
    """The most tokens one example may have for the model in `folder` (a multiple of 8); None where
    its config.json does not say (no file, or a model without absolute positions in it)."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    positions = next((config[key] for key in ("max_position_embeddings", "n_positions")
                      if isinstance(config.get(key), int) and not isinstance(config.get(key), bool)), None)
    if positions is None or positions <= 0:
        return None
    if config.get("model_type") in _OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        positions -= (pad if isinstance(pad, int) else 1) + 1
    limit = positions // BATCH_MULTIPLE * BATCH_MULTIPLE
    return limit if limit >= BATCH_MULTIPLE else None
