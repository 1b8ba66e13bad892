"""What a job will do (`JobPlan`) and what it did (`JobStats`), typed, and their one mapping to the
store's `jobs.hyperparams` / `jobs.options` JSON columns.

A plan is built once by `training.planning` with every default resolved, so the runner, the HTTP
APIs and the CLI read the same numbers and none of them carries a fallback of its own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from tunelab.models.meta import ENCODER, Method
from tunelab.store.records import JobRecord
from tunelab.training.config import ClassificationOptions, Hyperparameters


@dataclass
class JobPlan:
    method: Method
    """Resolved method (never "auto")."""
    base_model: str
    """Packaged name, local folder or hub id the weights come from (through the parent, if any)."""
    kind: str
    """ENCODER or CAUSAL, from the base model's architecture."""
    id_prefix: str
    """What the fine-tuned id starts with: "ada" for `-m ada`, as in `ada:ft-personal-…`."""
    hyperparameters: Hyperparameters
    """The job's hyperparameters with `batch_size` resolved (never None) and `method` resolved."""
    learning_rate: float
    """Peak learning rate: the base model's rate times `learning_rate_multiplier`."""
    base_learning_rate: float
    """The base model's own rate (inherited from the parent when continuing)."""
    parent_model: str | None = None
    """Fine-tuned model this job continues, if any."""
    labels: list[str] | None = None
    """Label set in head order (classifier) or the completions' label set (lm on classification data)."""
    classification: bool = False
    """The training completions form a small label set."""
    classification_options: ClassificationOptions = field(default_factory=ClassificationOptions)
    """OpenAI's --compute_classification_metrics and friends."""
    n_train: int = 0
    """Examples in the training file."""
    n_valid: int = 0
    """Examples in the validation file (0 without one)."""
    cumulative_epochs: int = 1
    """Epochs of the whole lineage once this job is done (parent's plus this job's)."""
    auto_hyperparameters: list[str] = field(default_factory=list)
    """Hyperparameters that were "auto" and were resolved by training/recipes.py."""
    recipe: str = ""
    """The resolved hyperparameters in one line, as the job's events show them."""
    model_id_style: str = "legacy"
    """The fine-tuned id's form (store.ids LEGACY or CURRENT): the endpoint that created the job decides."""

    @property
    def batch_size(self) -> int:
        return int(self.hyperparameters.batch_size)

    @property
    def n_epochs(self) -> int:
        return self.hyperparameters.n_epochs

    @property
    def scores_classes(self) -> str | None:
        """"binary" / "multiclass" when the results need classification columns, else None."""
        opts = self.classification_options
        if not (opts.compute_classification_metrics and self.labels and self.n_valid):
            return None
        return "binary" if opts.classification_positive_class else "multiclass"

    # -- the store's two JSON columns ---------------------------------------------------------
    def to_store(self) -> tuple[dict, dict]:
        """(hyperparams, options) column values."""
        hp = self.hyperparameters.to_dict()
        hp["method"] = self.method.value
        options = {
            **self.classification_options.to_dict(),
            "kind": self.kind, "id_prefix": self.id_prefix, "base_model": self.base_model,
            "learning_rate": self.learning_rate, "base_learning_rate": self.base_learning_rate,
            "labels": self.labels, "classification": self.classification, "n_train": self.n_train,
            "n_valid": self.n_valid, "cumulative_epochs": self.cumulative_epochs,
            "auto_hyperparameters": self.auto_hyperparameters, "recipe": self.recipe,
            "model_id_style": self.model_id_style,
        }
        return hp, options

    @classmethod
    def from_job(cls, job: JobRecord) -> "JobPlan":
        opts = dict(job.options or {})
        hp = Hyperparameters.from_dict({k: v for k, v in (job.hyperparams or {}).items()
                                        if k in {f.name for f in fields(Hyperparameters)}})
        # Rows written before plans were typed kept the base defaults apart from the batch size.
        if hp.batch_size is None:
            hp.batch_size = int(opts.get("default_batch_size") or 16)
        # Older rows stored these before "auto" existed: their defaults were these values.
        for name, old_default in (("n_epochs", 1), ("learning_rate_multiplier", 1.0), ("warmup_ratio", 0.06),
                                  ("shuffle", False), ("keep_best", False), ("early_stopping_patience", 0)):
            if getattr(hp, name) is None:
                setattr(hp, name, old_default)
        base_lr = float(opts.get("base_learning_rate") or 5e-5)
        class_opts = ClassificationOptions(**{f.name: opts[f.name] for f in fields(ClassificationOptions)
                                              if opts.get(f.name) is not None})
        return cls(
            method=Method.parse(job.method), base_model=opts.get("base_model") or job.base_model,
            kind=opts.get("kind") or ENCODER, id_prefix=opts.get("id_prefix") or job.model.split(":", 1)[0],
            hyperparameters=hp, learning_rate=float(opts.get("learning_rate") or base_lr * hp.learning_rate_multiplier),
            base_learning_rate=base_lr, parent_model=job.parent_model, labels=opts.get("labels"),
            classification=bool(opts.get("classification")), classification_options=class_opts,
            n_train=int(opts.get("n_train") or 0), n_valid=int(opts.get("n_valid") or 0),
            cumulative_epochs=int(opts.get("cumulative_epochs") or hp.n_epochs),
            auto_hyperparameters=list(opts.get("auto_hyperparameters") or []), recipe=opts.get("recipe") or "",
            model_id_style=opts.get("model_id_style") or "legacy",
        )


@dataclass
class JobStats:
    """What a finished job measured, kept in `jobs.options` next to the plan."""

    cpu_seconds: float | None = None
    """Process CPU time of the training (all attempts of a resumed job count)."""
    device: str | None = None
    """Where it trained: "cpu", "cuda:0", "mps"."""
    final_metrics: dict = field(default_factory=dict)
    """The last validation row: loss, accuracy and classification columns."""
    steps: int | None = None
    """Optimizer steps taken."""
    kept_epoch: int | None = None
    """The epoch whose weights were registered (keep_best; 0 is the parent's)."""
    temperature: float | None = None
    """The temperature fitted on the validation file (1.0: none)."""

    def to_options(self) -> dict:
        return asdict(self)

    @classmethod
    def from_job(cls, job: JobRecord) -> "JobStats":
        opts = job.options or {}
        return cls(cpu_seconds=opts.get("cpu_seconds"), device=opts.get("device"),
                   final_metrics=dict(opts.get("final_metrics") or {}), steps=opts.get("steps"),
                   kept_epoch=opts.get("kept_epoch"), temperature=opts.get("temperature"))
