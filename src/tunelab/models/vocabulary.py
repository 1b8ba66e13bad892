"""How much of a data file a model's tokenizer can read: the share of tokens it maps to its unknown
token ([UNK]).

minilm-l6 (all-MiniLM-L6-v2) has BERT's English WordPiece vocabulary, with about 500 Chinese
characters and the kana: on hand-written Amazon-style reviews it maps 68 % of the tokens of Chinese
text (了, 这, 很, 好 are not in it) and 24 % of Japanese text to [UNK] (59-62 % and 19-24 % on generated
reviews in the multilingual release's shape), against under 2 % for English, German, Spanish and
French (emoji, mostly: accents are stripped, not lost). Training on such text runs and reports
scores, so nothing else says that the model never saw most of the words; the notice below does,
before the job runs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

NOTICE_SHARE = 0.05
"""A share of [UNK] tokens from which a job or a build gets the notice; English, German, Spanish and
French reviews stay under 2 % on minilm-l6 (emoji are its [UNK]s there)."""
SAMPLE_ROWS = 2000  # evenly spaced rows; the share is stable well before that, and encoding stays < 0.2 s


@dataclass(frozen=True)
class UnknownTokens:
    share: float
    """[UNK] tokens over all tokens of the sampled texts."""
    mostly_unknown_rows: float
    """The share of rows of which half the tokens or more are [UNK]."""
    examples: list[str]
    """The commonest pieces of text read as [UNK], most frequent first."""
    rows: int
    unk_token: str


def _tokenizer(folder: Path):
    """The folder's fast tokenizer and its unknown token's (id, text); None where it has no
    tokenizer.json or no unknown token (a byte-level BPE, SmolLM2's, reads every character)."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    try:
        text = path.read_text(encoding="utf-8")  # read once: the tokenizer and its model's settings
        tokenizer = Tokenizer.from_str(text)
        model = json.loads(text).get("model") or {}
    except Exception:  # tokenizers raises plain Exceptions; a tokenizer it cannot read is the job's to report
        return None
    # A tokenizer.json may pad (all-MiniLM-L6-v2's pads to 128) or truncate: both would change the share.
    tokenizer.no_padding()
    tokenizer.no_truncation()
    if model.get("byte_fallback"):
        return None  # unknown characters become byte tokens, not [UNK]
    unk = model.get("unk_token")
    unk_id = tokenizer.token_to_id(unk) if isinstance(unk, str) else None
    if unk_id is None and isinstance(model.get("unk_id"), int):  # a Unigram model names its id
        unk_id = model["unk_id"]
        unk = tokenizer.id_to_token(unk_id)
    return (tokenizer, unk_id, unk) if unk_id is not None else None


def unknown_tokens(folder: Path | str, texts: Sequence[str], *, sample: int = SAMPLE_ROWS) -> UnknownTokens | None:
    """The [UNK] share of `texts` under the tokenizer in `folder`; None where it cannot be measured
    (no local tokenizer.json, no unknown token, no text)."""
    loaded = _tokenizer(Path(folder))
    if loaded is None or not texts:
        return None
    tokenizer, unk_id, unk = loaded
    step = max(1, len(texts) // sample)
    picked = [t for t in texts[::step][:sample] if t]
    if not picked:
        return None
    total = unknown = mostly = 0
    pieces: Counter[str] = Counter()
    for text, encoding in zip(picked, tokenizer.encode_batch(picked, add_special_tokens=False)):
        hits = [offsets for token, offsets in zip(encoding.ids, encoding.offsets) if token == unk_id]
        total += len(encoding.ids)
        unknown += len(hits)
        mostly += bool(encoding.ids) and 2 * len(hits) >= len(encoding.ids)
        pieces.update(text[start:end] for start, end in hits if end > start)
    if not total:
        return None
    return UnknownTokens(share=unknown / total, mostly_unknown_rows=mostly / len(picked),
                         examples=[piece for piece, _ in pieces.most_common(8)], rows=len(picked), unk_token=unk)


def unknown_token_notice(model: str, folder: Path | str, texts: Sequence[str], *, what: str = "training prompts",
                         threshold: float = NOTICE_SHARE) -> str | None:
    """A notice naming the [UNK] share when it reaches `threshold`, what it means and what to do."""
    found = unknown_tokens(folder, texts)
    if found is None or found.share < threshold:
        return None
    examples = " ".join(found.examples)
    other = ("a model whose tokenizer covers this language: smollm2-135m reads every character "
             "(byte-level tokens; -m smollm2-135m --method classifier, about 10x slower on a CPU), or a "
             "local folder of a multilingual model (-m PATH)")
    mostly = (f"; half or more of the tokens of {found.mostly_unknown_rows:.0%} of the {found.rows} rows checked"
              if found.mostly_unknown_rows >= 0.1 else "")
    return (f"{model}'s tokenizer reads {found.share:.0%} of the tokens of the {what} as {found.unk_token} "
            f"(e.g. {examples}{mostly}): the model cannot tell those words apart and learns from the rest only. "
            f"For this text, train {other}.")


def tokenizer_folder(resolved) -> Path | None:
    """Where the tokenizer of a model resolved with materialize=False is, without converting or
    downloading anything: None for a hub id not on disk and for smollm2-135m before its one-time
    conversion (a byte-level tokenizer: it has no [UNK] to count)."""
    from tunelab.errors import TunelabError
    from tunelab.models import sources
    from tunelab.models.meta import ENCODER
    from tunelab.models.registry import BASE_MODELS

    spec = BASE_MODELS.get(resolved.base_model) if resolved.parent is None else None
    if spec is not None:
        if spec.kind != ENCODER:
            folder = sources.cache_dir() / spec.name
            return folder if folder.is_dir() else None
        try:
            return spec.locate()
        except TunelabError:  # not installed: the job creation reports that itself
            return None
    path = Path(resolved.path) if isinstance(resolved.path, Path) or resolved.parent is not None else None
    return path if path is not None and path.is_dir() else None


def base_model_notice(name: str, texts: Sequence[str], *, what: str = "training prompts") -> str | None:
    """unknown_token_notice for a packaged model or an OpenAI alias (as classification data maps
    it), for commands that name a model without a store (`datasets build -m`); None for other names."""
    from tunelab.models.registry import BASE_MODELS, alias_target

    target = alias_target(name)
    base = target[0] if target else name.lower()
    if base not in BASE_MODELS:
        return None
    from tunelab.models.registry import ResolvedModel

    folder = tokenizer_folder(ResolvedModel(requested=name, id_prefix=base, base_model=base,
                                            kind=BASE_MODELS[base].kind, path=Path(base)))
    return unknown_token_notice(base, folder, texts, what=what) if folder is not None else None
