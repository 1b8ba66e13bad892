"""Completions for any servable model, batched with concurrent requests for the same model.

Classification models answer with label-level semantics (see tunelab.inference.predictor): a
completion is one label and counts as one token, so `max_tokens=1, logprobs=5` gives the top-5
label distribution whatever the tokenizer does with ` 4`. Other models generate token by token.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass

from tunelab.errors import TunelabError
from tunelab.inference.predictor import Completion as Generated, Predictor
from tunelab.server.common import SYSTEM_FINGERPRINT, ServerState, new_request_id, now
from tunelab.server.completions.protocol import (
    Completion, CompletionChoice, CompletionRequest, CompletionUsage, Logprobs,
)
from tunelab.server.errors import APIError, bad_request, from_tunelab_error
from tunelab.server.models.service import get_predictor
from tunelab.server.prediction_log import Caller, check_tags

MAX_STOP = 4
MAX_PROMPTS = 2048


@dataclass(frozen=True)
class SamplingParams:
    """What must be equal for requests to share one `Predictor.complete` call. logprobs is not here:
    a batch asks for the largest and each request keeps its own top-k."""

    max_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    n: int = 1
    stop: tuple[str, ...] = ()
    echo: bool = False
    seed: int | None = None

    def normalized(self, label_mode: bool) -> "SamplingParams":
        """Parameters that cannot change the answer are reset, so more requests batch together."""
        values = asdict(self)
        if label_mode:  # one label per completion: any length from 1 on gives the whole label
            values.update(max_tokens=min(self.max_tokens, 1))
        if not self.temperature:  # greedy: no randomness to seed or truncate
            values.update(temperature=0.0, top_p=1.0, seed=None)
        return SamplingParams(**values)


async def run_completions(state: ServerState, model_id: str, predictor: Predictor, prompts: list[str],
                          params: SamplingParams, logprobs: int | None) -> list[list[Generated]]:
    """`n` completions per prompt, computed in one batch with other requests' prompts."""
    raw = await run_completions_raw(state, model_id, predictor, prompts, params, logprobs)
    return [[_trim(c, logprobs) for c in choices] for choices in raw]


async def run_completions_raw(state: ServerState, model_id: str, predictor: Predictor, prompts: list[str],
                              params: SamplingParams, logprobs: int | None, *,
                              all_labels: bool = False) -> list[list[Generated]]:
    """`run_completions` before each request's top-k is cut from the batch's larger one. With
    `all_labels` (a classification model), the top_logprobs hold every label: what the prediction
    log keeps; `trim` then gives the request its own top-k."""
    params = params.normalized(predictor.is_classification)
    if all_labels and predictor.is_classification:
        logprobs = max(logprobs or 0, len(predictor.labels))
    kwargs = asdict(params)
    kwargs["stop"] = list(params.stop)

    def run(items: list[tuple[str, int | None]]):
        k = max((lp or 0) for _, lp in items) or None
        return predictor.complete([p for p, _ in items], logprobs=k, **kwargs)

    batcher = state.batchers.batcher(model_id, ("complete", id(predictor), params), run)
    return await batcher.submit([(p, logprobs) for p in prompts])


def trim(c: Generated, k: int | None) -> Generated:
    """A completion with the top-k a request asked for."""
    return _trim(c, k)


def label_logprobs(c: Generated) -> dict[str, float] | None:
    """The label distribution of a label-mode completion computed with `all_labels`."""
    return c.top_logprobs[0] if c.label_mode and c.top_logprobs and c.top_logprobs[0] else None


def prediction_of(c: Generated, prompt: str, echo: bool) -> str:
    """What the model answered, without an echoed prompt: the label (label mode) or the text."""
    if c.label_mode and c.tokens:
        return c.tokens[0]
    return c.text[len(prompt):] if echo and c.text.startswith(prompt) else c.text


def _trim(c: Generated, k: int | None) -> Generated:
    """Keep this request's top-k of the batch's larger top-k (both are in descending order)."""
    if not k:
        tops = [None] * len(c.tokens)
    else:
        tops = [dict(list(t.items())[:k]) if t else t for t in c.top_logprobs]
    return Generated(text=c.text, tokens=c.tokens, token_logprobs=c.token_logprobs, top_logprobs=tops,
                     text_offset=c.text_offset, finish_reason=c.finish_reason, prompt_tokens=c.prompt_tokens,
                     completion_tokens=c.completion_tokens, label_mode=c.label_mode)


def normalize_prompts(prompt) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if not prompt:
        raise bad_request("'prompt' is an empty list; give a string or a non-empty list of strings.", param="prompt")
    if len(prompt) > MAX_PROMPTS:
        raise bad_request(f"'prompt' holds {len(prompt)} prompts; send at most {MAX_PROMPTS} per request.",
                          param="prompt")
    if all(isinstance(p, str) for p in prompt):
        return list(prompt)
    raise bad_request("Token-id prompts need the model's tokenizer.", param="prompt")  # see decode_prompts


def decode_prompts(prompt, tokenizer) -> list[str]:
    """The prompts as text: token-id prompts (a list of ints, or a list of such lists) are decoded
    with the model's tokenizer, as OpenAI reads them with the model's encoding."""
    if isinstance(prompt, list) and prompt and not all(isinstance(p, str) for p in prompt):
        batch = [prompt] if all(isinstance(t, int) for t in prompt) else prompt
        if len(batch) > MAX_PROMPTS:
            raise bad_request(f"'prompt' holds {len(batch)} prompts; send at most {MAX_PROMPTS} per request.",
                              param="prompt")
        if not callable(getattr(tokenizer, "decode", None)):
            raise bad_request("This model cannot read token-id prompts; send the prompt as text.", param="prompt")
        size = getattr(tokenizer, "vocab_size", None)
        size = max(size or 0, len(tokenizer)) if hasattr(tokenizer, "__len__") else size
        texts = []
        for i, ids in enumerate(batch):
            if not ids:
                raise bad_request(f"prompt[{i}] is an empty list of token ids.", param="prompt")
            bad = next((t for t in ids if t < 0 or (size and t >= size)), None)
            if bad is not None:
                raise bad_request(f"Token id {bad} in prompt[{i}] is not in this model's vocabulary "
                                  f"(0 to {size - 1}).", param="prompt")
            texts.append(tokenizer.decode(ids))
        return texts
    return normalize_prompts(prompt)


def normalize_stop(stop) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if len(stops) > MAX_STOP:
        raise bad_request(f"'stop' may hold at most {MAX_STOP} sequences, got {len(stops)}.", param="stop")
    return tuple(s for s in stops if s)


def refuse_unsupported(*, frequency_penalty=None, presence_penalty=None, logit_bias=None, best_of=None, n=1,
                       suffix=None, stream=None, stream_options=None) -> None:
    """Parameters tunelab cannot honour are refused rather than silently ignored (and, as OpenAI
    refuses them, stream_options without stream)."""
    if stream_options is not None and not stream:
        raise bad_request("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                          param="stream_options")
    if frequency_penalty:
        raise bad_request("frequency_penalty is not supported by tunelab; leave it at 0.", param="frequency_penalty")
    if presence_penalty:
        raise bad_request("presence_penalty is not supported by tunelab; leave it at 0.", param="presence_penalty")
    if logit_bias:
        raise bad_request("logit_bias is not supported by tunelab.", param="logit_bias")
    if best_of is not None and best_of != (n or 1):
        raise bad_request("best_of is not supported by tunelab (other than best_of = n); use n and pick by logprobs.",
                          param="best_of")
    if suffix:
        raise bad_request("suffix (insertion) is not supported by tunelab.", param="suffix")


def context_limit(predictor) -> int | None:
    """Positions the model has (a ProcessPredictor reports it; an in-process one has its config)."""
    if hasattr(predictor, "max_positions"):
        return predictor.max_positions
    return getattr(getattr(getattr(predictor, "model", None), "config", None), "max_position_embeddings", None)


def check_context(predictor, prompts: list[str], max_tokens: int, param: str = "prompt") -> None:
    """Generation must fit the model's positions, and start from at least one token (an empty prompt
    crashed the model); classification prompts are truncated like in training, and may be empty."""
    if predictor.is_classification:
        return
    for i, prompt in enumerate(prompts):
        if not prompt.strip() and not _tokens_with_specials(predictor, prompt):
            where = "prompt" if len(prompts) == 1 else f"prompt[{i}]"
            raise bad_request(f"{where} is empty: it has no tokens for this model to continue from (tunelab does "
                              "not start a document from an end-of-text token as OpenAI's models did); send at "
                              "least one token of text, or token ids.", param=param, code="empty_prompt")
    limit = context_limit(predictor)
    if not limit:
        return
    for prompt in prompts:
        n_prompt = predictor.count_tokens(prompt) + 2  # + special tokens the tokenizer may add
        if n_prompt + max_tokens > limit:
            raise APIError(400, f"This model's maximum context length is {limit} tokens, however you requested "
                                f"{n_prompt + max_tokens} tokens ({n_prompt} in your prompt; {max_tokens} for the "
                                "completion). Please reduce your prompt or completion length.",
                           param=param, code="context_length_exceeded")


def _tokens_with_specials(predictor, prompt: str) -> int:
    """Tokens the model reads for `prompt`, the special ones its tokenizer adds (a BOS) included."""
    tokenizer = getattr(predictor, "tokenizer", None)
    if not callable(tokenizer):
        return predictor.count_tokens(prompt)
    return len(tokenizer(prompt, add_special_tokens=True)["input_ids"])


def _logprobs(c: Generated, requested: int | None) -> Logprobs | None:
    if requested is None:
        return None
    tops = None
    if requested:
        # null where the token has no distribution (an echoed prompt's first token), as OpenAI answers
        tops = [None if t is None else {k: finite(v) for k, v in t.items()} for t in c.top_logprobs]
    return Logprobs(tokens=c.tokens, token_logprobs=[finite(v) for v in c.token_logprobs], top_logprobs=tops,
                    text_offset=c.text_offset)


def finite(value: float | None) -> float | None:
    """JSON has no -Infinity: an impossible label is reported with the lowest float instead."""
    if value is None:
        return None
    return value if math.isfinite(value) else -3.4028234663852886e38


async def create_completion(state: ServerState, request: CompletionRequest, caller: Caller | None = None):
    caller = caller or Caller.unknown()
    check_tags(request.user, request.metadata)
    token_ids = isinstance(request.prompt, list) and bool(request.prompt) and not all(
        isinstance(p, str) for p in request.prompt)
    prompts = [] if token_ids else normalize_prompts(request.prompt)
    n = request.n or 1
    refuse_unsupported(frequency_penalty=request.frequency_penalty, presence_penalty=request.presence_penalty,
                       logit_bias=request.logit_bias, best_of=request.best_of, n=n, suffix=request.suffix,
                       stream=request.stream, stream_options=request.stream_options)
    max_tokens = 16 if request.max_tokens is None else request.max_tokens
    if max_tokens < 1 and not request.echo:
        raise bad_request("max_tokens must be at least 1 (0 only with echo=true, to score the prompt).",
                          param="max_tokens")
    params = SamplingParams(max_tokens=max_tokens, temperature=1.0 if request.temperature is None else request.temperature,
                            top_p=1.0 if request.top_p is None else request.top_p, n=n,
                            stop=normalize_stop(request.stop), echo=bool(request.echo), seed=request.seed)
    predictor = await get_predictor(state, request.model)
    if token_ids:
        prompts = decode_prompts(request.prompt, predictor.tokenizer)
    check_context(predictor, prompts, max_tokens)
    if request.stream and callable(getattr(predictor, "stream", None)) and not predictor.is_classification:
        # Tokens go out as they are generated (one label, for a classification model, is one piece anyway).
        return admitted(state, request.model, len(prompts) * n,
                        live_stream(state, request, predictor, prompts, params, caller))
    recorder = state.recorder
    full = recorder is not None and recorder.wants_distribution(predictor)
    raw = await run_completions_raw(state, request.model, predictor, prompts, params, request.logprobs,
                                    all_labels=full)
    results = [[_trim(c, request.logprobs) for c in choices] for choices in raw]

    completion_id = new_request_id("cmpl")
    if recorder is not None:
        firsts = [choices[0] for choices in raw]
        recorder.record(caller, endpoint="completions", response_id=completion_id, model=request.model,
                        predictor=predictor, prompts=prompts,
                        predictions=[prediction_of(c, p, bool(request.echo)) for c, p in zip(firsts, prompts)],
                        logprobs=[label_logprobs(c) if full else None for c in firsts],
                        prompt_tokens=[c.prompt_tokens for c in firsts], user=request.user,
                        metadata=request.metadata, store=request.store)
    created = now()
    choices, completion_tokens = [], 0
    for i, per_prompt in enumerate(results):
        for j, c in enumerate(per_prompt):
            completion_tokens += c.completion_tokens
            choices.append(CompletionChoice(text=c.text, index=i * n + j, logprobs=_logprobs(c, request.logprobs),
                                            finish_reason=c.finish_reason))
    prompt_tokens = sum(per_prompt[0].prompt_tokens for per_prompt in results if per_prompt)
    usage = CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                            total_tokens=prompt_tokens + completion_tokens)
    if request.stream:
        include_usage = bool(request.stream_options and request.stream_options.include_usage)
        return _stream(completion_id, created, request, prompts, results, usage if include_usage else None)
    return Completion(id=completion_id, created=created, model=request.model, system_fingerprint=SYSTEM_FINGERPRINT,
                      choices=choices, usage=usage)


def pieces(c: Generated, prompt: str, echo: bool) -> Iterator[tuple[str, int | None]]:
    """The text of a completion as streamed: (text, token index or None for text that is no token)."""
    body = c.text
    first = 0
    if echo and body.startswith(prompt):
        yield prompt, None
        body = body[len(prompt):]
        # echo with logprobs lists the prompt's tokens first: they went out with the prompt
        while first < len(c.tokens) and first < len(c.text_offset) and c.text_offset[first] < len(prompt):
            first += 1
    pos = 0
    for t, token in enumerate(c.tokens[first:], start=first):
        if body.startswith(token, pos):
            yield token, t
            pos += len(token)
        else:
            break
    if pos < len(body):
        yield body[pos:], None


def sse(obj) -> str:
    data = obj.model_dump() if hasattr(obj, "model_dump") else obj
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _stream(completion_id, created, request: CompletionRequest, prompts, results, usage) -> Iterator[str]:
    n = request.n or 1
    want = request.logprobs

    def chunk(choice: CompletionChoice, with_usage=None) -> str:
        return sse(Completion(id=completion_id, created=created, model=request.model,
                              system_fingerprint=SYSTEM_FINGERPRINT, choices=[choice] if choice is not None else [],
                              usage=with_usage))

    for i, per_prompt in enumerate(results):
        for j, c in enumerate(per_prompt):
            index = i * n + j
            for text, t in pieces(c, prompts[i], bool(request.echo)):
                lp = None
                if want is not None and t is not None:
                    top = c.top_logprobs[t]
                    lp = Logprobs(tokens=[c.tokens[t]], token_logprobs=[finite(c.token_logprobs[t])],
                                  top_logprobs=[None if top is None else {k: finite(v) for k, v in top.items()}],
                                  text_offset=[c.text_offset[t]])
                yield chunk(CompletionChoice(text=text, index=index, logprobs=lp, finish_reason=None))
            yield chunk(CompletionChoice(text="", index=index, logprobs=None, finish_reason=c.finish_reason))
    if usage is not None:
        yield chunk(None, usage)
    yield "data: [DONE]\n\n"


_DONE = object()


def admitted(state: ServerState, model_id: str, n: int, stream: AsyncIterator[str]) -> AsyncIterator[str]:
    """`stream` counted against the model's --max-queue while it runs: refused here, before the
    answer starts, with a 429 (OverloadedError) when the model is full."""
    release = state.batchers.admit_stream(model_id, n)

    async def guarded() -> AsyncIterator[str]:
        try:
            async for item in stream:
                yield item
        finally:
            release()
            await stream.aclose()  # a client gone mid-answer stops the generation at its next token

    answer = guarded()
    weakref.finalize(answer, release)  # an answer never started (the client left first) is released too
    return answer


async def stream_pieces(predictor, prompt: str, params: SamplingParams, logprobs: int | None,
                        seed: int | None) -> AsyncIterator:
    """The pieces of one completion as the model generates them (tunelab.inference.streaming.Piece),
    then the whole Completion as the last item. Generation runs in a worker thread; if the client
    goes away, the generator is closed and generation stops at its next token."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    gone = threading.Event()

    def on_piece(piece):
        if gone.is_set():
            return False
        loop.call_soon_threadsafe(queue.put_nowait, piece)
        return True

    kwargs = dict(max_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p,
                  stop=list(params.stop), logprobs=logprobs, echo=params.echo, seed=seed)
    future = loop.run_in_executor(None, lambda: predictor.stream(prompt, on_piece, **kwargs))
    future.add_done_callback(lambda _: queue.put_nowait(_DONE))
    try:
        while (item := await queue.get()) is not _DONE:
            yield item
        yield await future
    finally:
        gone.set()


async def live_stream(state: ServerState, request: CompletionRequest, predictor, prompts: list[str],
                      params: SamplingParams, caller: Caller) -> AsyncIterator[str]:
    """`stream: true` with each token sent as soon as it is generated: the prompts and their `n`
    choices one after another, then the usage (if asked for) and `[DONE]`."""
    completion_id, created, n = new_request_id("cmpl"), now(), request.n or 1
    want = request.logprobs

    def chunk(choice: CompletionChoice | None, usage: CompletionUsage | None = None) -> str:
        return sse(Completion(id=completion_id, created=created, model=request.model,
                              system_fingerprint=SYSTEM_FINGERPRINT, choices=[choice] if choice else [], usage=usage))

    firsts: list[Generated] = []
    completion_tokens = prompt_tokens = 0
    for i, prompt in enumerate(prompts):
        for j in range(n):
            index = i * n + j
            if params.echo:
                yield chunk(CompletionChoice(text=prompt, index=index, logprobs=None, finish_reason=None))
            seed = None if params.seed is None else params.seed + j  # n different draws, reproducibly
            try:
                async for item in stream_pieces(predictor, prompt, params, want, seed):
                    if isinstance(item, Generated):
                        final = item
                        break
                    lp = None
                    if want is not None and item.token:
                        lp = Logprobs(tokens=[item.text], token_logprobs=[finite(item.logprob)],
                                      top_logprobs=[{k: finite(v) for k, v in (item.top or {}).items()}],
                                      text_offset=[item.offset])
                    yield chunk(CompletionChoice(text=item.text, index=index, logprobs=lp, finish_reason=None))
            except TunelabError as exc:  # the answer has begun: the error goes in the stream, as OpenAI's do
                error = from_tunelab_error(exc)
                yield f"data: {json.dumps({'error': {'message': error.message, 'type': error.type, 'code': error.code}})}\n\n"
                return
            yield chunk(CompletionChoice(text="", index=index, logprobs=None, finish_reason=final.finish_reason))
            completion_tokens += final.completion_tokens
            if j == 0:
                firsts.append(final)
                prompt_tokens += final.prompt_tokens
    if state.recorder is not None:
        state.recorder.record(caller, endpoint="completions", response_id=completion_id, model=request.model,
                              predictor=predictor, prompts=prompts,
                              predictions=[prediction_of(c, p, params.echo) for c, p in zip(firsts, prompts)],
                              logprobs=[None] * len(firsts), prompt_tokens=[c.prompt_tokens for c in firsts],
                              user=request.user, metadata=request.metadata, store=request.store)
    if request.stream_options and request.stream_options.include_usage:
        yield chunk(None, CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                                          total_tokens=prompt_tokens + completion_tokens))
    yield "data: [DONE]\n\n"
