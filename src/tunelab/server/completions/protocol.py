"""`/v1/completions` (the legacy Completions API the book's listings call), in OpenAI's field order
(openai.types.CompletionCreateParams; Completion, CompletionChoice, Logprobs, CompletionUsage)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tunelab.server.common import RequestModel, ResponseModel

MAX_LOGPROBS = 20


class StreamOptions(RequestModel):
    include_usage: bool | None = None
    include_obfuscation: bool | None = None


class CompletionRequest(RequestModel):
    model: str
    prompt: str | list[str] | list[int] | list[list[int]]
    best_of: int | None = Field(None, ge=1, le=20)
    echo: bool | None = False
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, int] | None = None
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS)
    max_tokens: int | None = Field(16, ge=0)
    n: int | None = Field(1, ge=1, le=128)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    suffix: str | None = None
    temperature: float | None = Field(1.0, ge=0, le=2)
    top_p: float | None = Field(1.0, ge=0, le=1)
    user: str | None = None
    # --- tunelab extensions (the prediction log; as in OpenAI's chat completions) ---
    metadata: dict[str, str] | None = None
    """Tags kept with the logged prediction (up to 16 string pairs, as OpenAI allows)."""
    store: bool | None = None
    """false: do not keep this answer in the prediction log (as OpenAI's `store`)."""


class Logprobs(ResponseModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None] | None = None
    text_offset: list[int]


class CompletionChoice(ResponseModel):
    text: str
    index: int
    logprobs: Logprobs | None = None
    finish_reason: Literal["stop", "length", "content_filter"] | None = None


class CompletionUsage(ResponseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class Completion(ResponseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str | None = None
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None
