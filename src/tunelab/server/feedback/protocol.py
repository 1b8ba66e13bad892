"""POST /v1/feedback — a tunelab extension (OpenAI has no such endpoint): the label a person gave
for a served prediction, or for a text. Every field is tunelab's own."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictInt

from tunelab.server.common import RequestModel, ResponseModel


class FeedbackRequest(RequestModel):
    # --- tunelab extension: the whole resource ---
    id: str | None = None
    """The `id` of a response from /v1/completions, /v1/chat/completions or /v1/labels/score."""
    index: int = Field(0, ge=0)
    """Which prompt of that response (its position in `prompt`); 0 for a single prompt."""
    label: str | StrictInt
    """The right label ("4" names the model's " 4"; so does 4, as a star rating is often stored), or for a
    free-form model the right completion."""
    source: str | None = Field(None, max_length=200)
    """Who says so: "human" (default), "annotator:alice", "returns-db", ..."""
    model: str | None = None
    """Without `id`: the model the text is for."""
    text: str | None = None
    """Without `id`: the text (prompt) the label is for."""
    user: str | None = None
    metadata: dict[str, str] | None = None


class Feedback(ResponseModel):
    id: str
    object: Literal["feedback"] = "feedback"
    created_at: int
    model: str
    response_id: str | None = None
    index: int | None = None
    label: str
    prediction: str | None = None
    """What the model had answered (with `id`)."""
    correct: bool | None = None
    """Whether the model's answer was the label (None without `id`)."""
    source: str
