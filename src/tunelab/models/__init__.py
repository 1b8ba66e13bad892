"""Base models that can be fine-tuned here, and how a model name resolves to weights on disk."""

from tunelab.models.registry import BASE_MODELS, ALIASES, BaseModelSpec, ResolvedModel, resolve_model, list_base_models

__all__ = ["BASE_MODELS", "ALIASES", "BaseModelSpec", "ResolvedModel", "resolve_model", "list_base_models"]
