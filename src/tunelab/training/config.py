"""Hyperparameters of a job, with OpenAI's meanings, validated all at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from tunelab.errors import InvalidInputError
from tunelab.models.meta import Method

METHODS = ("auto", *(m.value for m in Method))


@dataclass
class Hyperparameters:
    n_epochs: int = 1
    """Passes over the training file (OpenAI: n_epochs)."""
    batch_size: int | None = None
    """Examples per step; None picks the base model's default (OpenAI's "auto")."""
    learning_rate_multiplier: float = 1.0
    """Scales the base model's own learning rate (e.g. 1e-4 for minilm-l6), as OpenAI's multiplier did."""
    prompt_loss_weight: float = 0.0
    """lm method: weight of prompt tokens in the loss. OpenAI's default was 0.01; 0 lets us compute
    full-vocabulary logits only on completion tokens, which is most of the cost of a causal LM step."""
    seed: int = 42
    """Seeds weight init of new heads, dropout and batch order."""
    method: str = "auto"
    """auto | classifier (sequence-classification head) | lm (causal language modelling)."""
    lora: bool = False
    """Train a LoRA adapter (peft) instead of every weight."""
    lora_r: int = 16
    """LoRA rank."""
    class_weights: bool = False
    """classifier: weight the loss by inverse class frequency (imbalanced labels)."""
    max_length: int = 256
    """Tokens kept per example (prompt + completion); longer ones are truncated from the right."""
    shuffle: bool = False
    """Shuffle examples each epoch. Off by default, as with OpenAI: the file's order is the training
    order (length bucketing only reorders within small windows), so a file sorted by label trains
    sorted by label — the chapter's "unshuffled" experiment."""
    warmup_ratio: float = 0.06
    """Fraction of steps with a linear learning-rate warm-up."""
    eval_every: int = 0
    """Steps between validation rows in the results CSV; 0 picks ~10 per epoch."""
    checkpoint_seconds: float = 60.0
    """Seconds between resumable checkpoints (so a killed worker loses at most this much work)."""

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            expected = f.type.split(" | ")[0] if isinstance(f.type, str) else f.type
            if expected == "int" and (isinstance(value, bool) or not isinstance(value, int)):
                problems.append(f"{f.name} must be an integer, got {value!r}")
            elif expected == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                problems.append(f"{f.name} must be a number, got {value!r}")
            elif expected == "bool" and not isinstance(value, bool):
                problems.append(f"{f.name} must be true or false, got {value!r}")
        if not problems:
            if self.n_epochs < 1 or self.n_epochs > 100:
                problems.append(f"n_epochs must be between 1 and 100, got {self.n_epochs}")
            if self.batch_size is not None and not 1 <= self.batch_size <= 4096:
                problems.append(f"batch_size must be between 1 and 4096, got {self.batch_size}")
            if not 0 < self.learning_rate_multiplier <= 100:
                problems.append(f"learning_rate_multiplier must be > 0 and <= 100, got {self.learning_rate_multiplier}")
            if not 0 <= self.prompt_loss_weight <= 1:
                problems.append(f"prompt_loss_weight must be between 0 and 1, got {self.prompt_loss_weight}")
            if self.method not in METHODS:
                problems.append(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
            if not 8 <= self.max_length <= 8192:
                problems.append(f"max_length must be between 8 and 8192, got {self.max_length}")
            if self.lora_r < 1:
                problems.append(f"lora_r must be >= 1, got {self.lora_r}")
            if not 0 <= self.warmup_ratio < 1:
                problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if problems:
            raise InvalidInputError("Invalid hyperparameters:", problems=problems)

    @classmethod
    def from_dict(cls, values: dict) -> "Hyperparameters":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError("Unknown hyperparameters:", problems=unknown,
                                    hint=f"Known: {', '.join(sorted(known))}.")
        return cls(**{k: v for k, v in values.items() if v is not None or k == "batch_size"})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ClassificationOptions:
    compute_classification_metrics: bool = False
    """Score every label on the validation file at each evaluation (needs a validation file)."""
    classification_n_classes: int | None = None
    """Number of classes; checked against the data."""
    classification_positive_class: str | None = None
    """Binary classification: the positive class (enables precision/recall/AUROC columns)."""
    classification_betas: list[float] = field(default_factory=list)
    """Binary: also report F-beta for each beta."""

    def to_dict(self) -> dict:
        return asdict(self)
