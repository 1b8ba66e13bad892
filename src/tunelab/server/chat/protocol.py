"""`/v1/chat/completions`, in OpenAI's field order (openai.types.chat: CompletionCreateParams,
ChatCompletion, ChatCompletionChunk, ChatCompletionTokenLogprob). Text only: no tools, audio or images."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field

from tunelab.server.common import RequestModel, ResponseModel
from tunelab.server.completions.protocol import MAX_LOGPROBS, CompletionUsage, StreamOptions


class ChatMessageIn(RequestModel):
    model_config = ConfigDict(extra="allow")
    role: Literal["developer", "system", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class ChatCompletionRequest(RequestModel):
    messages: list[ChatMessageIn]
    model: str
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, int] | None = None
    logprobs: bool | None = False
    max_completion_tokens: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    metadata: dict[str, str] | None = None
    n: int | None = Field(1, ge=1, le=128)
    parallel_tool_calls: bool | None = None
    """Accepted (tunelab calls no tools; with `tools` the request is refused anyway)."""
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    prompt_cache_key: str | None = None
    """Accepted: tunelab has no prompt cache to key, so it cannot change an answer."""
    response_format: dict[str, Any] | None = None
    safety_identifier: str | None = None
    """Accepted; kept as the logged prediction's end user when `user` is not given."""
    seed: int | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
    """Accepted: tunelab serves every request the same way (the answer says "default")."""
    stop: str | list[str] | None = None
    store: bool | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(1.0, ge=0, le=2)
    tool_choice: Any = None
    tools: list[dict[str, Any]] | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    top_p: float | None = Field(1.0, ge=0, le=1)
    user: str | None = None


class TopLogprob(ResponseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None


class TokenLogprob(ResponseModel):
    token: str
    logprob: float
    bytes: list[int] | None = None
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(ResponseModel):
    content: list[TokenLogprob] | None = None
    refusal: list[TokenLogprob] | None = None


class ChatMessage(ResponseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None


class ChatChoice(ResponseModel):
    index: int
    message: ChatMessage
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"]


class ChatCompletion(ResponseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChatChoice]
    usage: CompletionUsage | None = None
    service_tier: str | None = None
    """"default" when the request named a service tier (tunelab has one)."""


class ChoiceDelta(ResponseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(ResponseModel):
    index: int
    delta: ChoiceDelta
    logprobs: ChoiceLogprobs | None = None
    finish_reason: Literal["stop", "length"] | None = None


class ChatCompletionChunk(ResponseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = None
