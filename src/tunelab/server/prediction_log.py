"""What the serving routes hand to the prediction log (tunelab.store.predictions) and to /metrics.

Every answer of a fine-tuned model from /v1/completions, /v1/chat/completions and
/v1/labels/score becomes one row per prompt: the response id (the `id` the client got, so that
POST /v1/feedback can refer to it), the time, the model, the API key's id (a hash, never the key),
the request's `user` and `metadata`, the prompt (unless the request says `store: false` or the
server runs with --no-log-text), the prediction, and for classifiers the whole label distribution
(renormalised to sum to 1), the top-1 probability and its margin over the second, and the latency.
A request with `store: false` (OpenAI's field: do not store this answer) is not logged at all; it
still counts in /metrics. `tunelab serve --no-log-text` logs every answer without its prompt's text.

The request path only builds a small dict and appends it to the writer's queue; hashing, quality
flags, JSON and SQL happen in the writer's thread.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import Request

from tunelab.server.auth import api_key_id
from tunelab.server.errors import bad_request
from tunelab.server.metrics import ServerMetrics
from tunelab.store.predictions import PredictionLogWriter


@dataclass(frozen=True)
class Caller:
    """Who asked, and when the request reached its route."""

    api_key_id: str | None
    started: float  # time.perf_counter()
    received: float  # time.time()

    @classmethod
    def unknown(cls) -> "Caller":
        return cls(None, time.perf_counter(), time.time())


async def get_caller(request: Request) -> Caller:
    """FastAPI dependency: the caller of this request (async: run inline, not in a worker thread)."""
    return Caller(api_key_id(request.headers.get("authorization")), time.perf_counter(), time.time())


MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512
MAX_USER = 256


def check_tags(user: str | None, metadata: dict[str, str] | None) -> None:
    """OpenAI's limits on `metadata` (16 pairs, keys up to 64 and values up to 512 characters) and a
    sane length for `user`, as 400s: they are stored with every logged prediction."""
    if user is not None and len(user) > MAX_USER:
        raise bad_request(f"'user' is {len(user)} characters long; at most {MAX_USER} are allowed.", param="user")
    if not metadata:
        return
    if len(metadata) > MAX_METADATA_PAIRS:
        raise bad_request(f"'metadata' has {len(metadata)} pairs; at most {MAX_METADATA_PAIRS} are allowed.",
                          param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY:
            raise bad_request(f"The metadata key {key[:20]!r}… is longer than {MAX_METADATA_KEY} characters.",
                              param="metadata")
        if len(value) > MAX_METADATA_VALUE:
            raise bad_request(f"The value of metadata key {key!r} is longer than {MAX_METADATA_VALUE} characters.",
                              param="metadata")


def prompt_columns(prompt: str) -> dict:
    """Columns derived from a prompt (run in the writer's thread): its hash (duplicates are found
    even when the text is not kept), length, and whether it is empty or not text."""
    from tunelab.monitoring.stats import is_empty, is_non_text, prompt_digest

    return {"prompt_sha256": prompt_digest(prompt), "prompt_chars": len(prompt), "empty_prompt": is_empty(prompt),
            "non_text": is_non_text(prompt)}


def distribution(logprobs: dict[str, float] | Sequence[float], labels: Sequence[str]) -> tuple[dict[str, float], float, float]:
    """({label: probability} over every label, renormalised to sum to 1; top-1; top-1 minus top-2)."""
    if isinstance(logprobs, dict):
        values = [logprobs.get(label, -math.inf) for label in labels]
    else:
        values = list(logprobs)
    probs = [math.exp(v) if v is not None and v > -745 else 0.0 for v in values]
    total = sum(probs)
    if total <= 0:
        probs = [1.0 / len(labels)] * len(labels)
    else:
        probs = [p / total for p in probs]
    ordered = sorted(probs, reverse=True)
    top1 = ordered[0]
    margin = top1 - ordered[1] if len(ordered) > 1 else top1
    return dict(zip(labels, probs)), top1, margin


class PredictionRecorder:
    """Hands answers to the writer (None: logging off) and counts them for /metrics."""

    def __init__(self, writer: PredictionLogWriter | None, metrics: ServerMetrics | None = None):
        self.writer = writer
        self.metrics = metrics

    @property
    def logging(self) -> bool:
        return self.writer is not None

    @staticmethod
    def fine_tuned(predictor) -> bool:
        """Only fine-tuned models are logged (a base model served as is has no metadata)."""
        return getattr(predictor, "meta", None) is not None

    def wants_distribution(self, predictor) -> bool:
        return self.logging and self.fine_tuned(predictor) and predictor.is_classification

    def record(self, caller: Caller, *, endpoint: str, response_id: str, model: str, predictor,
               prompts: Sequence[str], predictions: Sequence[str | None],
               logprobs: Sequence[dict[str, float] | Sequence[float] | None], prompt_tokens: Sequence[int | None],
               user: str | None = None, metadata: dict | None = None, store: bool | None = None) -> None:
        """One row per prompt. `logprobs[i]`: the label log-probabilities of prompt i (classifiers), or None."""
        if not self.fine_tuned(predictor):
            return
        labels = list(predictor.labels or [])
        latency_ms = (time.perf_counter() - caller.started) * 1000.0
        write = self.writer is not None and store is not False
        for i, prompt in enumerate(prompts):
            label_probs = top1 = margin = None
            if labels and logprobs[i] is not None:
                label_probs, top1, margin = distribution(logprobs[i], labels)
            if self.metrics is not None:
                self.metrics.observe_prediction(model, endpoint, predictions[i] if labels else None)
            if not write:
                continue
            self.writer.put({
                "response_id": response_id, "prompt_index": i, "created_at": caller.received, "model": model,
                "endpoint": endpoint, "api_key_id": caller.api_key_id, "end_user": user, "metadata": metadata,
                "prompt": prompt, "prompt_tokens": prompt_tokens[i], "prediction": predictions[i],
                "label_probs": label_probs, "top1_prob": top1, "margin": margin, "latency_ms": latency_ms,
            })

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
