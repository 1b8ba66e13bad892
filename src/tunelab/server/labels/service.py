"""Full label distributions, batched like completions (one `Predictor.score_labels` call for the
prompts of many concurrent requests)."""

from __future__ import annotations

import math

import numpy as np

from tunelab.server.common import ServerState, new_request_id
from tunelab.server.completions.service import MAX_PROMPTS
from tunelab.server.errors import bad_request
from tunelab.server.labels.protocol import LabelDistribution, LabelScoreRequest, LabelScores, LabelUsage
from tunelab.server.models.service import get_predictor
from tunelab.server.prediction_log import Caller, check_tags

LOWEST = -3.4028234663852886e38  # JSON has no -Infinity


async def score(state: ServerState, request: LabelScoreRequest, caller: Caller | None = None) -> LabelScores:
    caller = caller or Caller.unknown()
    check_tags(request.user, request.metadata)
    prompts = [request.prompt] if isinstance(request.prompt, str) else list(request.prompt)
    if not prompts:
        raise bad_request("'prompt' is an empty list; give a string or a non-empty list of strings.", param="prompt")
    if len(prompts) > MAX_PROMPTS:
        # As /v1/completions: a request alone in an empty queue is always admitted, so without this
        # one request of half a million short prompts (2 MB) held the model for many minutes.
        raise bad_request(f"'prompt' holds {len(prompts)} prompts; send at most {MAX_PROMPTS} per request.",
                          param="prompt")
    predictor = await get_predictor(state, request.model)
    if not predictor.is_classification:
        raise bad_request(f"{request.model} is not a classification model (it has no label set); use "
                          "/v1/completions.", param="model", code="not_a_classifier")

    def run(items: list[str]):
        return list(predictor.score_labels(items))

    batcher = state.batchers.batcher(request.model, ("score", id(predictor)), run)
    rows = await batcher.submit(prompts)
    labels = list(predictor.labels)
    data = []
    for i, row in enumerate(rows):
        row = np.asarray(row, dtype=float)
        data.append(LabelDistribution(
            index=i, label=labels[int(np.argmax(row))],
            logprobs={label: (float(v) if math.isfinite(v) else LOWEST) for label, v in zip(labels, row)}))
    counts = [predictor.count_tokens(p) for p in prompts]
    tokens = sum(counts)
    response_id = new_request_id("labelscore")
    if state.recorder is not None:
        state.recorder.record(caller, endpoint="labels.score", response_id=response_id, model=request.model,
                              predictor=predictor, prompts=prompts, predictions=[d.label for d in data],
                              logprobs=list(rows), prompt_tokens=counts, user=request.user,
                              metadata=request.metadata, store=request.store)
    return LabelScores(id=response_id, model=request.model, labels=labels, data=data,
                       usage=LabelUsage(prompt_tokens=tokens, total_tokens=tokens))
