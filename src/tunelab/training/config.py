"""Hyperparameters of a job, with OpenAI's meanings, validated all at once."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field, fields

from tunelab.errors import InvalidInputError
from tunelab.models.meta import Method

METHODS = ("auto", *(m.value for m in Method))


AUTO = "auto"
AUTO_FIELDS = ("n_epochs", "batch_size", "learning_rate_multiplier", "warmup_ratio", "shuffle", "keep_best",
               "early_stopping_patience")
"""Hyperparameters whose default is "auto" (None here): resolved once per job by
`training.recipes.resolve` from the model, the number of examples and the method."""
LR_SCHEDULES = ("linear", "cosine", "constant")
LOSSES = ("cross_entropy", "logit_adjusted")
POOLINGS = ("auto", "cls", "cls+mean")  # tunelab.models.heads (not imported: it pulls in transformers)
AUTO_VALUED = ("pooling",)
"""Fields that keep "auto" as their own value: resolved later, when the model is built."""


@dataclass
class Hyperparameters:
    n_epochs: int | None = None
    """Passes over the training file (OpenAI: n_epochs); None is "auto" (see training/recipes.py)."""
    batch_size: int | None = None
    """Examples per step; None is "auto" (the model's batch for this device, fewer for tiny files)."""
    learning_rate_multiplier: float | None = None
    """Scales the base model's own learning rate (e.g. 2e-4 for minilm-l6), as OpenAI's multiplier did;
    None is "auto" (0.5 for a new model, 0.25 when continuing a fine-tuned one)."""
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
    loss: str = "cross_entropy"
    """classifier: cross_entropy, or logit_adjusted (Menon et al. 2021: the training prior's log is
    added to the logits inside the loss, so the model's own argmax learns the balanced decision for
    imbalanced labels)."""
    logit_adjustment: bool = False
    """Classification with a validation file: tune a post-hoc logit adjustment strength tau for
    macro-F1 on it, stored with the model and applied to every distribution it reports
    (tunelab.inference.adjustment): fewer rare-class misses, at some cost in accuracy."""
    pooling: str = "auto"
    """classifier method on an encoder: what the head reads (tunelab.models.heads). auto: the [CLS]
    token and the mean of the token vectors where the encoder is BERT-family (minilm-l6), else the
    [CLS] token; cls: Hugging Face's own head (a folder any `pipeline` loads); cls+mean. A continued
    model keeps its parent's head."""
    max_length: int = 256
    """Tokens kept per example (prompt + completion). A longer classifier prompt keeps its first
    quarter and its last three quarters (head + tail: the verdict and the separator stay in); the
    lm method keeps the prompt's end and the completion."""
    shuffle: bool | None = None
    """Shuffle examples each epoch. None is "auto", which shuffles: a file sorted by label (as
    published review dumps often are) would otherwise train sorted by label and collapse onto the
    last label. False keeps the file's order, as OpenAI did (length bucketing only reorders within
    small windows): the chapter's "unshuffled" experiment."""
    warmup_ratio: float | None = None
    """Fraction of steps with a linear learning-rate warm-up; None is "auto" (0.06 for a new model,
    0 when continuing: a trained model needs no warm-up, and one would push it away from its optimum)."""
    lr_schedule: str = "linear"
    """After the warm-up: linear (decay to 0 at the last step), cosine (to 0) or constant."""
    keep_best: bool | None = None
    """Score the whole validation file after every epoch and register the best epoch (highest
    validation accuracy; ties: lower log-loss after temperature scaling; a continued job counts its
    starting point as epoch 0).
    None is "auto": on whenever there is a validation file."""
    early_stopping_patience: int | None = None
    """With keep_best: stop after this many epochs without a better validation score (0 never
    stops early). None is "auto": 2."""
    calibrate: bool = True
    """Fit a temperature on the validation file after training (classification data), stored with
    the model and applied to every probability it reports."""
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
            if self.n_epochs is not None and not 1 <= self.n_epochs <= 100:
                problems.append(f"n_epochs must be between 1 and 100, got {self.n_epochs}")
            if self.batch_size is not None and not 1 <= self.batch_size <= 4096:
                problems.append(f"batch_size must be between 1 and 4096, got {self.batch_size}")
            if self.learning_rate_multiplier is not None and not 0 < self.learning_rate_multiplier <= 100:
                problems.append(f"learning_rate_multiplier must be > 0 and <= 100, got {self.learning_rate_multiplier}")
            if not 0 <= self.prompt_loss_weight <= 1:
                problems.append(f"prompt_loss_weight must be between 0 and 1, got {self.prompt_loss_weight}")
            if self.method not in METHODS:
                problems.append(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
            if not 8 <= self.max_length <= 8192:
                problems.append(f"max_length must be between 8 and 8192, got {self.max_length}")
            if self.lora_r < 1:
                problems.append(f"lora_r must be >= 1, got {self.lora_r}")
            if self.warmup_ratio is not None and not 0 <= self.warmup_ratio < 1:
                problems.append(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
            if self.pooling not in POOLINGS:
                problems.append(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
            if self.loss not in LOSSES:
                problems.append(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
            if self.lr_schedule not in LR_SCHEDULES:
                problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
            if self.early_stopping_patience is not None and self.early_stopping_patience < 0:
                problems.append(f"early_stopping_patience must be >= 0, got {self.early_stopping_patience}")
        if problems:
            raise InvalidInputError("Invalid hyperparameters:", problems=problems)

    @classmethod
    def from_dict(cls, values: dict) -> "Hyperparameters":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            # Each problem stands alone: job creation lists them among the other problems of the request.
            problems = []
            for name in unknown:
                close = difflib.get_close_matches(name, known, n=1)
                problems.append(f"unknown hyperparameter {name!r}" + (f" (did you mean {close[0]!r}?)" if close else "")
                                + f"; known: {', '.join(sorted(known))}")
            raise InvalidInputError("Unknown hyperparameters:", problems=problems)
        bad_auto = sorted(k for k, v in values.items() if v == AUTO and k not in (*AUTO_FIELDS, *AUTO_VALUED))
        if bad_auto:
            allowed = ", ".join((*AUTO_FIELDS, *AUTO_VALUED))
            raise InvalidInputError(f"'auto' is only accepted for {allowed}.",
                                    problems=[f"{name}: 'auto' is only accepted for {allowed}" for name in bad_auto])
        # "auto" (OpenAI's word) and None both mean: resolve from the model, the data and the method.
        return cls(**{k: (None if v == AUTO and k in AUTO_FIELDS else v) for k, v in values.items()
                      if v is not None or k in AUTO_FIELDS})

    def auto_fields(self) -> list[str]:
        """The fields still "auto" (before planning resolves them)."""
        return [name for name in AUTO_FIELDS if getattr(self, name) is None]

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
