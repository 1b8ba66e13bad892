"""`/v1/models` objects, in OpenAI's field order (openai.types.Model, ModelDeleted)."""

from __future__ import annotations

from typing import Literal

from tunelab.server.common import ResponseModel


class Model(ResponseModel):
    id: str
    created: int
    object: Literal["model"] = "model"
    owned_by: str
    # --- tunelab extensions ---
    kind: Literal["base", "alias", "fine-tuned"]
    """base: a packaged model; alias: an OpenAI legacy name mapped to one; fine-tuned: from a job."""
    status: str
    """installed / missing (base models), alias, or ready (fine-tuned)."""
    description: str | None = None
    base_model: str | None = None
    parent: str | None = None
    """The fine-tuned model this one continued from, if any."""
    method: str | None = None
    """classifier or lm (fine-tuned models)."""
    labels: list[str] | None = None
    """The labels of a classification model (what /v1/labels/score returns a distribution over)."""
    job_id: str | None = None
    cumulative_epochs: int | None = None


class ModelDeleted(ResponseModel):
    id: str
    deleted: bool
    object: Literal["model"] = "model"
