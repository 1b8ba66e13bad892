"""POST /v1/chat/completions, for models whose tokenizer has a chat template (400 otherwise)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from tunelab.server.chat import service
from tunelab.server.chat.protocol import ChatCompletion, ChatCompletionRequest
from tunelab.server.common import ServerState, get_state
from tunelab.server.prediction_log import Caller, get_caller

router = APIRouter(tags=["chat"])


@router.post("/chat/completions", response_model=ChatCompletion)
async def create_chat_completion(request: ChatCompletionRequest, state: ServerState = Depends(get_state),
                                 caller: Caller = Depends(get_caller)):
    """Text chat. `logprobs: true` with `top_logprobs` (0-20) gives per-token log-probabilities in the
    current shape (`choices[i].logprobs.content[j].top_logprobs`)."""
    result = await service.create_chat_completion(state, request, caller)
    if request.stream:
        return StreamingResponse(result, media_type="text/event-stream", headers={"cache-control": "no-cache"})
    return result
