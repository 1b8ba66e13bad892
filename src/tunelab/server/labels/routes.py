"""POST /v1/labels/score — a tunelab extension (documented on the route)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tunelab.server.common import ServerState, get_state
from tunelab.server.labels import service
from tunelab.server.labels.protocol import LabelScoreRequest, LabelScores
from tunelab.server.prediction_log import Caller, get_caller

router = APIRouter(tags=["labels (tunelab extension)"])


@router.post("/labels/score", response_model=LabelScores)
async def score_labels(request: LabelScoreRequest, state: ServerState = Depends(get_state),
                       caller: Caller = Depends(get_caller)):
    """The full label distribution of a classification model — a tunelab extension.

    Request: `{"model": "<fine-tuned classification model>", "prompt": "text" | ["text", ...]}`, and
    optionally `user`, `metadata` and `store` (false: not kept in the prediction log), as in OpenAI's API.
    The response's `id` names these predictions for POST /v1/feedback.

    Response: for each prompt, the log-probability of EVERY label of the model (no top-k cap, unlike
    `logprobs` on /v1/completions, which stops at 20), in the model's label order, with the argmax:

        {"object": "list", "id": "labelscore-…", "model": "...", "labels": [" 1", " 2", ...],
         "data": [{"index": 0, "object": "label_distribution", "label": " 4",
                   "logprobs": {" 1": -3.2, " 2": -2.9, ...}}],
         "usage": {"prompt_tokens": 12, "total_tokens": 12}}

    The numbers are those of `tunelab evaluate` and of /v1/completions with logprobs: the classifier
    head's log-softmax (classifier method), or log P(label tokens | prompt) summed over the label's
    tokens (lm method; these sum to at most 1 over the labels). Concurrent requests for the same
    model are scored in one batch. A model without labels gets a 400; an unknown model a 404.
    """
    return await service.score(state, request, caller)
