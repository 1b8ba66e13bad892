"""Chat completions for models trained on chat data and for models whose tokenizer has a chat
template: the messages are rendered as the model learnt them (tunelab.models.chat: its chat
template, or tunelab's transcript for chat-trained classifiers) or with
`apply_chat_template(..., add_generation_prompt=True)`, and completed like a legacy prompt, in the
same batches as /v1/completions requests with the same sampling parameters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from starlette.concurrency import run_in_threadpool

from tunelab.errors import InvalidInputError
from tunelab.inference.predictor import Completion as Generated
from tunelab.models.chat import render_chat
from tunelab.server.chat.protocol import (
    ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChatMessage, ChoiceDelta, ChoiceLogprobs,
    ChunkChoice, TokenLogprob, TopLogprob,
)
from tunelab.server.common import SYSTEM_FINGERPRINT, ServerState, new_request_id, now
from tunelab.server.completions.protocol import CompletionUsage
from tunelab.server.completions.service import (
    SamplingParams, finite, check_context, context_limit, label_logprobs, normalize_stop, pieces, prediction_of,
    admitted, refuse_unsupported, run_completions_raw, sse, stream_pieces, trim,
)
from tunelab.server.errors import bad_request
from tunelab.server.models.service import get_predictor
from tunelab.server.prediction_log import Caller, check_tags

DEFAULT_MAX_TOKENS = 256


def _messages(request: ChatCompletionRequest) -> list[dict[str, str]]:
    out = []
    for i, message in enumerate(request.messages):
        if message.role in ("tool", "function"):
            raise bad_request("Tool and function messages are not supported by tunelab.", param=f"messages[{i}].role")
        # Messages allow extra keys (a previous answer's message passed back holds refusal, audio,
        # annotations, all null), but a tool call in the history would be dropped from the prompt
        # without a word, as the tool messages it belongs to are refused.
        for key in ("tool_calls", "function_call"):
            if (message.model_extra or {}).get(key):
                raise bad_request("Tool and function calls are not supported by tunelab; give the assistant's "
                                  "turns as text.", param=f"messages[{i}].{key}")
        content = message.content
        if isinstance(content, list):
            texts = []
            for part in content:
                if part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise bad_request(f"Only text content parts are supported, got {part.get('type')!r}.",
                                      param=f"messages[{i}].content")
                texts.append(part["text"])
            content = "".join(texts)
        if content is None:
            raise bad_request("Every message needs text content.", param=f"messages[{i}].content")
        out.append({"role": "system" if message.role == "developer" else message.role, "content": content})
    if not out:
        raise bad_request("'messages' is empty; give at least one message.", param="messages")
    return out


def render_prompt(predictor, model: str, messages: list[dict[str, str]]) -> str:
    tokenizer = predictor.tokenizer
    fmt = getattr(getattr(predictor, "meta", None), "chat_format", None)
    if fmt is not None:  # trained on chat data: the messages as training rendered them
        try:
            return render_chat(tokenizer, messages, fmt)
        except InvalidInputError as exc:
            raise bad_request(f"{model}: {exc.message}", param="messages") from None
    if not getattr(tokenizer, "chat_template", None):
        raise bad_request(f"{model} has no chat template, so it cannot take chat messages; use /v1/completions "
                          "with a prompt instead.", param="model", code="chat_not_supported")
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # a template may reject a role sequence (jinja raise_exception)
        raise bad_request(f"The chat template of {model} rejects these messages: {exc}", param="messages") from None


def _token_logprobs(c: Generated, top: int) -> list[TokenLogprob]:
    out = []
    for t, token in enumerate(c.tokens):
        alternatives = list((c.top_logprobs[t] or {}).items())[:top] if top else []
        out.append(TokenLogprob(
            token=token, logprob=finite(c.token_logprobs[t]), bytes=list(token.encode()),
            top_logprobs=[TopLogprob(token=k, logprob=finite(v), bytes=list(k.encode())) for k, v in alternatives]))
    return out


async def create_chat_completion(state: ServerState, request: ChatCompletionRequest, caller: Caller | None = None):
    caller = caller or Caller.unknown()
    check_tags(request.user or request.safety_identifier, request.metadata)
    n = request.n or 1
    refuse_unsupported(frequency_penalty=request.frequency_penalty, presence_penalty=request.presence_penalty,
                       logit_bias=request.logit_bias, n=n, stream=request.stream, stream_options=request.stream_options)
    if request.tools:
        raise bad_request("Tools are not supported by tunelab.", param="tools")
    if request.tool_choice not in (None, "none", "auto"):  # "required", or a named function
        raise bad_request("tool_choice asks for a tool call, but tunelab calls no tools (and the request has "
                          "none); leave it out or use \"none\".", param="tool_choice")
    if request.response_format and request.response_format.get("type") not in (None, "text"):
        raise bad_request("Only response_format {\"type\": \"text\"} is supported by tunelab.", param="response_format")
    if request.top_logprobs is not None and not request.logprobs:
        raise bad_request("top_logprobs needs logprobs set to true.", param="top_logprobs")
    messages = _messages(request)
    predictor = await get_predictor(state, request.model)
    prompt = await run_in_threadpool(render_prompt, predictor, request.model, messages)
    max_tokens = request.max_completion_tokens or request.max_tokens
    if max_tokens is None:  # as much as fits, up to DEFAULT_MAX_TOKENS
        limit = context_limit(predictor)
        room = limit - predictor.count_tokens(prompt) - 2 if limit else DEFAULT_MAX_TOKENS
        max_tokens = max(1, min(DEFAULT_MAX_TOKENS, room))
    check_context(predictor, [prompt], max_tokens, param="messages")
    params = SamplingParams(max_tokens=max_tokens, temperature=1.0 if request.temperature is None else request.temperature,
                            top_p=1.0 if request.top_p is None else request.top_p, n=n,
                            stop=normalize_stop(request.stop), echo=False, seed=request.seed)
    top = request.top_logprobs or 0
    k = (max(top, 1) if request.logprobs else None)
    if request.stream and callable(getattr(predictor, "stream", None)) and not predictor.is_classification:
        return admitted(state, request.model, params.n,  # tokens as generated
                        _live_stream(state, request, predictor, prompt, params, k, top, caller))
    recorder = state.recorder
    full = recorder is not None and recorder.wants_distribution(predictor)
    (raw,) = await run_completions_raw(state, request.model, predictor, [prompt], params, k, all_labels=full)
    choices = [trim(c, k) for c in raw]

    chat_id = new_request_id("chatcmpl")
    if recorder is not None and raw:
        recorder.record(caller, endpoint="chat.completions", response_id=chat_id, model=request.model,
                        predictor=predictor, prompts=[prompt], predictions=[prediction_of(raw[0], prompt, False)],
                        logprobs=[label_logprobs(raw[0]) if full else None], prompt_tokens=[raw[0].prompt_tokens],
                        user=request.user or request.safety_identifier, metadata=request.metadata,
                        store=request.store)
    created = now()
    completion_tokens = sum(c.completion_tokens for c in choices)
    prompt_tokens = choices[0].prompt_tokens if choices else 0
    usage = CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                            total_tokens=prompt_tokens + completion_tokens)
    if request.stream:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return _stream(chat_id, created, request, choices, top, usage if include_usage else None)
    out = []
    for j, c in enumerate(choices):
        lp = ChoiceLogprobs(content=_token_logprobs(c, top)) if request.logprobs else None
        out.append(ChatChoice(index=j, message=ChatMessage(content=c.text), logprobs=lp,
                              finish_reason=c.finish_reason))
    return ChatCompletion(id=chat_id, created=created, model=request.model, system_fingerprint=SYSTEM_FINGERPRINT,
                          choices=out, usage=usage, service_tier="default" if request.service_tier else None)


def _stream(chat_id, created, request: ChatCompletionRequest, choices: list[Generated], top: int,
            usage: CompletionUsage | None) -> Iterator[str]:
    def chunk(choice: ChunkChoice | None, with_usage=None) -> str:
        return sse(ChatCompletionChunk(id=chat_id, created=created, model=request.model,
                                       system_fingerprint=SYSTEM_FINGERPRINT,
                                       choices=[choice] if choice is not None else [], usage=with_usage))

    for j, c in enumerate(choices):
        yield chunk(ChunkChoice(index=j, delta=ChoiceDelta(role="assistant", content="")))
        token_lps = _token_logprobs(c, top) if request.logprobs else None
        for text, t in pieces(c, "", False):
            lp = ChoiceLogprobs(content=[token_lps[t]]) if token_lps is not None and t is not None else None
            yield chunk(ChunkChoice(index=j, delta=ChoiceDelta(content=text), logprobs=lp))
        yield chunk(ChunkChoice(index=j, delta=ChoiceDelta(), finish_reason=c.finish_reason))
    if usage is not None:
        yield chunk(None, usage)
    yield "data: [DONE]\n\n"


async def _live_stream(state: ServerState, request: ChatCompletionRequest, predictor, prompt: str,
                       params: SamplingParams, k: int | None, top: int, caller: Caller) -> AsyncIterator[str]:
    """`stream: true` with each token sent as soon as it is generated (the `n` choices one after another)."""
    chat_id, created = new_request_id("chatcmpl"), now()

    def chunk(choice: ChunkChoice | None, with_usage=None) -> str:
        return sse(ChatCompletionChunk(id=chat_id, created=created, model=request.model,
                                       system_fingerprint=SYSTEM_FINGERPRINT,
                                       choices=[choice] if choice is not None else [], usage=with_usage))

    finals: list[Generated] = []
    for j in range(params.n):
        yield chunk(ChunkChoice(index=j, delta=ChoiceDelta(role="assistant", content="")))
        seed = None if params.seed is None else params.seed + j
        async for item in stream_pieces(predictor, prompt, params, k, seed):
            if isinstance(item, Generated):
                finals.append(item)
                break
            lp = None
            if request.logprobs and item.token:
                alternatives = list((item.top or {}).items())[:top] if top else []
                lp = ChoiceLogprobs(content=[TokenLogprob(
                    token=item.text, logprob=finite(item.logprob), bytes=list(item.text.encode()),
                    top_logprobs=[TopLogprob(token=t, logprob=finite(v), bytes=list(t.encode()))
                                  for t, v in alternatives])])
            yield chunk(ChunkChoice(index=j, delta=ChoiceDelta(content=item.text), logprobs=lp))
        yield chunk(ChunkChoice(index=j, delta=ChoiceDelta(), finish_reason=finals[-1].finish_reason))
    if state.recorder is not None and finals:
        state.recorder.record(caller, endpoint="chat.completions", response_id=chat_id, model=request.model,
                              predictor=predictor, prompts=[prompt], predictions=[prediction_of(finals[0], prompt, False)],
                              logprobs=[None], prompt_tokens=[finals[0].prompt_tokens],
                              user=request.user or request.safety_identifier, metadata=request.metadata,
                              store=request.store)
    if request.stream_options and request.stream_options.include_usage:
        completion_tokens = sum(c.completion_tokens for c in finals)
        prompt_tokens = finals[0].prompt_tokens if finals else 0
        yield chunk(None, CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                          total_tokens=prompt_tokens + completion_tokens))
    yield "data: [DONE]\n\n"
