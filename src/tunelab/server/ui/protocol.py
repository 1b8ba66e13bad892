"""Request bodies of the dashboard's own endpoints (/ui/api/…). They are not part of the published
OpenAI-shaped contract: only the dashboard's JavaScript calls them."""

from __future__ import annotations

from pydantic import Field

from tunelab.server.common import RequestModel


class PrepareRequest(RequestModel):
    accept: list[str] | None = None
    """Keys of the proposed fixes to apply (None: all of them, as `prepare_data -q` does)."""
    split: bool = False
    """Split off a stratified validation set (classification data)."""


class EvaluateRequest(RequestModel):
    model: str
    test_file: str
    """Id of an uploaded file (file-…) with held-out prompt/completion rows."""
    train_file: str | None = None
    """Id of the training file: adds the majority-class and TF-IDF baselines."""


class CompareRequest(RequestModel):
    models: list[str] = Field(min_length=1, max_length=12)
    test_file: str
    train_file: str | None = None
