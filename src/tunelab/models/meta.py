"""What a fine-tuned model is: its method and the metadata saved next to its weights.

`ModelMeta` travels in two places that must agree: `tunelab.json` inside the model folder (what
inference loads) and the `meta` column of the store's `models` row (what listings show without
loading weights). Both are written from one `to_dict()` and read back through `from_dict()`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum

from tunelab.errors import InvalidInputError

ENCODER = "encoder"
"""A base model that can only learn a classification head (BERT-style)."""
CAUSAL = "causal"
"""A base model that can learn a classification head or language modelling (decoder-only)."""


def pooling_conflict(model: str, parent_pooling: str, requested: str) -> str | None:
    """Why `requested` pooling cannot continue `model` (whose head is `parent_pooling`), or None: a
    continued model keeps its head. Planning reports it with the request's other problems; loading
    checks it again for a job queued by an older version."""
    if requested in ("auto", parent_pooling):
        return None
    return (f"{model} has the {parent_pooling} classifier head; a continued model keeps its head "
            f"(got pooling={requested}): leave pooling at auto")


class Method(str, Enum):
    """How a job trains. A `str` enum so that stored rows and JSON keep the plain words."""

    CLASSIFIER = "classifier"
    """A sequence-classification head over the labels; scores every label in one forward pass."""
    LM = "lm"
    """Causal language modelling on the completion; needs a causal base model."""

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: "str | Method") -> "Method":
        try:
            return cls(str(value))
        except ValueError:
            raise InvalidInputError(f"Unknown method {value!r}.",
                                    hint=f"Use one of: {', '.join(m.value for m in cls)}.") from None


@dataclass
class ModelMeta:
    method: Method
    """How the model was trained; decides how it is loaded and scored."""
    kind: str
    """ENCODER or CAUSAL: the architecture family of the base model."""
    base_model: str
    """Packaged name, local folder or hub id of the base model (a LoRA adapter is loaded onto it)."""
    labels: list[str] | None = None
    """Classification labels in head order (classifier), or the label set an lm model was trained on."""
    lora: bool = False
    """The folder holds a LoRA adapter, not full weights."""
    max_length: int = 256
    """Tokens per example the model was trained with; inference truncates the same way."""
    classification: bool = False
    """The training data was a small label set (scoring every label is meaningful)."""
    base_learning_rate: float = 5e-5
    """The base model's own learning rate, which `learning_rate_multiplier` scales when continuing."""
    default_batch_size: int = 16
    """Batch size the base model trains with unless a job says otherwise."""
    epochs_this_job: int = 1
    """Epochs of the job that produced this folder (a checkpoint records the epochs done so far)."""
    job_id: str | None = None
    """The job that trained it."""
    temperature: float = 1.0
    """Temperature scaling fitted on the validation file after training (1.0: none): every label
    distribution the model reports is softmax(log p / temperature) (tunelab.inference.calibration)."""
    kept_epoch: int | None = None
    """With keep_best: the epoch of the job whose weights these are (0: the parent's, unchanged)."""
    chat_format: str | None = None
    """Trained on chat data: how its messages are rendered ("template": the tokenizer's chat
    template; "transcript": tunelab.data.chat.transcript), in training, `evaluate` and
    /v1/chat/completions alike (tunelab.models.chat). None: trained on prompt/completion rows."""
    class_prior: list[float] | None = None
    """Classification: each label's share of the training rows, in `labels` order (what logit
    adjustment divides out; tunelab.inference.adjustment)."""
    logit_adjustment: float = 0.0
    """Post-hoc logit adjustment strength tau tuned on the validation file for macro-F1 (0: none):
    every label distribution the model reports is softmax(log p / temperature - tau * log prior)."""
    loss: str = "cross_entropy"
    """The training loss: cross_entropy, or logit_adjusted (the prior was added to the logits in the loss)."""
    pooling: str = "cls"
    """classifier method: what the head reads (tunelab.models.heads): "cls" (Hugging Face's own
    encoder head), "cls+mean" (the [CLS] token and the mean of the token vectors) or "last" (a causal
    model's last token, Hugging Face's own). Models saved before the field existed are "cls"."""

    def __post_init__(self) -> None:
        self.method = Method.parse(self.method)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["method"] = self.method.value
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "ModelMeta":
        # Unknown keys are ignored so that a model saved by a newer tunelab still loads.
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known and v is not None})
