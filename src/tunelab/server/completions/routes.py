"""POST /v1/completions: the legacy Completions API, with `logprobs` (legacy shape) and `stream`."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from tunelab.server.common import ServerState, get_state
from tunelab.server.completions import service
from tunelab.server.completions.protocol import Completion, CompletionRequest
from tunelab.server.prediction_log import Caller, get_caller

router = APIRouter(tags=["completions"])


@router.post("/completions", response_model=Completion)
async def create_completion(request: CompletionRequest, state: ServerState = Depends(get_state),
                            caller: Caller = Depends(get_caller)):
    """`model` is a fine-tuned model id (or a causal base model). For a classification model, a
    completion is one label: `max_tokens=1, temperature=0, logprobs=5` returns the predicted label
    and the top-5 labels with their log-probabilities in `choices[0].logprobs.top_logprobs[0]`.
    `logprobs` goes up to 20; for every label use POST /v1/labels/score."""
    result = await service.create_completion(state, request, caller)
    if request.stream:
        return StreamingResponse(result, media_type="text/event-stream", headers={"cache-control": "no-cache"})
    return result
