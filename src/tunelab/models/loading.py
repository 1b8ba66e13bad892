"""Build, save and load models for both methods, with or without a LoRA adapter.

A saved fine-tuned model is a folder with the weights (or the adapter), the tokenizer and
`tunelab.json` (method, labels, base model), which is everything inference needs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from tunelab.console import import_tqdm_auto_quietly
from tunelab.errors import InvalidInputError, ModelUnavailableError
from tunelab.models.meta import CAUSAL, Method, ModelMeta, pooling_conflict
from tunelab.models.chat import keep_latest_turns

if TYPE_CHECKING:  # the registry needs the store (SQLAlchemy); loading and saving a folder must not
    from tunelab.models.registry import ResolvedModel

META_FILE = "tunelab.json"


def quiet_transformers() -> None:
    """Silence transformers/peft warnings that are expected here (a fresh head's untrained weights,
    download bars) so they do not bury tunelab's own output."""
    import_tqdm_auto_quietly()
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("peft").setLevel(logging.ERROR)


def load_tokenizer(path):
    import_tqdm_auto_quietly()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def build_model(resolved: ResolvedModel, method: str, labels: list[str] | None, *, lora: bool, lora_r: int,
                seed: int, pooling: str = "auto"):
    """(model, tokenizer, pooling): a model ready to train, a fresh head on a base model or a fine-tuned
    model to continue, and the head it has (tunelab.models.heads; "last" for a causal model)."""
    quiet_transformers()
    torch.manual_seed(seed)
    if resolved.parent is not None:
        model, tokenizer, meta = load_fine_tuned(resolved.parent.path, trainable=True)
        if meta.method != method:
            raise InvalidInputError(
                f"{resolved.requested} was trained with the {meta.method} method; it can only be continued "
                f"with the same method (got {method}).")
        if method == Method.CLASSIFIER and list(meta.labels or []) != list(labels or []):
            raise InvalidInputError(
                f"{resolved.requested} classifies into {meta.labels}, but the training data has labels {labels}.",
                hint="Continue a classifier only on data with the same label set.")
        conflict = pooling_conflict(resolved.requested, meta.pooling, pooling)
        if conflict:
            raise InvalidInputError(conflict + ".")
        return model, tokenizer, meta.pooling
    from transformers import AutoConfig, AutoModelForCausalLM

    from tunelab.models.heads import classifier_class, resolve_pooling

    tokenizer = load_tokenizer(resolved.path)
    head = "last"  # a causal model's classifier reads its last token
    if method == Method.CLASSIFIER:
        if resolved.kind != CAUSAL:
            head = resolve_pooling(pooling, AutoConfig.from_pretrained(str(resolved.path)))
        elif pooling not in ("auto", "cls"):
            raise InvalidInputError(f"pooling={pooling} needs an encoder; {resolved.requested} is a causal model "
                                    "(its classifier reads the last token).", hint="Leave pooling at auto.")
        model = classifier_class(head).from_pretrained(
            str(resolved.path), num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={l: i for i, l in enumerate(labels)}, dtype=torch.float32)
        model.config.pad_token_id = tokenizer.pad_token_id
    else:
        if resolved.kind != CAUSAL:
            raise InvalidInputError(f"{resolved.requested} is an encoder; it can only train classifiers.")
        model = AutoModelForCausalLM.from_pretrained(str(resolved.path), dtype=torch.float32)
    if lora:
        from peft import LoraConfig, TaskType, get_peft_model

        task = TaskType.SEQ_CLS if method == Method.CLASSIFIER else TaskType.CAUSAL_LM
        model = get_peft_model(model, LoraConfig(task_type=task, r=lora_r, lora_alpha=2 * lora_r,
                                                 lora_dropout=0.05, target_modules="all-linear"))
    return model, tokenizer, head


def save_fine_tuned(model, tokenizer, folder: Path, meta: ModelMeta) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    (folder / META_FILE).write_text(json.dumps(meta.to_dict(), indent=2))


def read_meta(folder) -> ModelMeta:
    path = Path(folder) / META_FILE
    if not path.exists():
        raise InvalidInputError(f"{folder} is not a tunelab model folder (no {META_FILE}).")
    try:
        return ModelMeta.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError) as exc:
        raise _damaged(folder, exc) from None


def _damaged(folder, exc: Exception) -> ModelUnavailableError:
    """A model folder whose files are missing or cut short (deleted by hand, a full disk, a copy
    that stopped): named, with the way out, instead of the loader's traceback."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ModelUnavailableError(f"The model folder {folder} is damaged and cannot be loaded: {reason}",
                                 hint="Restore the folder from a copy, or delete the model (`tunelab models delete "
                                      "ID`) and fine-tune it again.")


def load_fine_tuned(folder, *, trainable: bool = False):
    """(model, tokenizer, meta) from a folder written by save_fine_tuned."""
    quiet_transformers()
    from safetensors import SafetensorError

    folder = Path(folder)
    meta = read_meta(folder)
    try:
        return _load(folder, meta, trainable)
    except (OSError, ValueError, SafetensorError) as exc:
        raise _damaged(folder, exc) from None


def _load(folder: Path, meta: ModelMeta, trainable: bool):
    from transformers import AutoModelForCausalLM

    from tunelab.models.heads import classifier_class

    classifier = meta.method == Method.CLASSIFIER
    auto = classifier_class(meta.pooling) if classifier else AutoModelForCausalLM
    tokenizer = load_tokenizer(folder)
    keep_latest_turns(tokenizer, meta.method, meta.chat_format)
    if meta.lora:
        from peft import PeftModel

        from tunelab.models.registry import resolve_model

        base = resolve_model(meta.base_model)
        kwargs = {}
        if classifier:
            labels = meta.labels
            kwargs = dict(num_labels=len(labels), id2label=dict(enumerate(labels)),
                          label2id={l: i for i, l in enumerate(labels)})
        model = auto.from_pretrained(str(base.path), dtype=torch.float32, **kwargs)
        if classifier:
            model.config.pad_token_id = tokenizer.pad_token_id
        model = PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
    else:
        model = auto.from_pretrained(str(folder), dtype=torch.float32)
    if not trainable:
        model.eval()
    return model, tokenizer, meta
