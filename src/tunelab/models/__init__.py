"""Base models that can be fine-tuned here, and how a model name resolves to weights on disk.

The registry is imported on first use: it needs the store (SQLAlchemy), and tokenising and
collation (`tunelab.models.encoding`) must not, so that the training loop runs where only
torch and transformers are installed (benchmarks/train_throughput.py on a bare GPU machine)."""

__all__ = ["BASE_MODELS", "ALIASES", "BaseModelSpec", "ResolvedModel", "resolve_model", "list_base_models"]


def __getattr__(name: str):
    if name in __all__:
        from tunelab.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'tunelab.models' has no attribute {name!r}")
