"""POST /v1/feedback — a tunelab extension (documented on the route)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tunelab.server.common import ServerState, get_state
from tunelab.server.feedback import service
from tunelab.server.feedback.protocol import Feedback, FeedbackRequest
from tunelab.server.prediction_log import Caller, get_caller

router = APIRouter(tags=["feedback (tunelab extension)"])


@router.post("/feedback", response_model=Feedback)
async def create_feedback(request: FeedbackRequest, state: ServerState = Depends(get_state),
                          caller: Caller = Depends(get_caller)):
    """The right label for a served prediction — a tunelab extension.

    Request: `{"id": "<response id>", "index": 0, "label": "4", "source": "human"}` for the
    prediction with that id (the `id` of a /v1/completions, /v1/chat/completions or
    /v1/labels/score response; `index`: which of its prompts), or `{"model": "...", "text": "...",
    "label": "4"}` for a text the model never saw. `user` and `metadata` as in OpenAI's requests.

    The label is matched to the model's labels ignoring surrounding spaces ("4" is " 4"). Feedback
    is kept in a table of its own and never changes the logged prediction; `tunelab monitor` turns
    it into realized accuracy, `tunelab feedback export` into training data. An unknown `id` is a
    404 (`prediction_not_found`), a label the model does not have a 400 (`invalid_label`).
    """
    return await service.create_feedback(state, request, caller)
