"""`/v1/labels/score` (a tunelab extension; OpenAI has no such endpoint)."""

from __future__ import annotations

from typing import Literal

from tunelab.server.common import RequestModel, ResponseModel


class LabelScoreRequest(RequestModel):
    model: str
    prompt: str | list[str]
    user: str | None = None
    """An id of the end user, kept with the logged predictions (as OpenAI's `user`)."""
    metadata: dict[str, str] | None = None
    """Tags kept with the logged predictions (as OpenAI's `metadata`)."""
    store: bool | None = None
    """false: do not keep these answers in the prediction log (as OpenAI's `store`)."""


class LabelDistribution(ResponseModel):
    index: int
    object: Literal["label_distribution"] = "label_distribution"
    label: str
    """The most probable label."""
    logprobs: dict[str, float]
    """log P(label | prompt) for every label of the model, in the model's label order."""


class LabelUsage(ResponseModel):
    prompt_tokens: int
    total_tokens: int


class LabelScores(ResponseModel):
    object: Literal["list"] = "list"
    id: str
    """The response id, to refer to these predictions later (POST /v1/feedback)."""
    model: str
    labels: list[str]
    data: list[LabelDistribution]
    usage: LabelUsage
