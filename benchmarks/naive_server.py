"""The peer of `benchmarks/serve_throughput.py --peer naive`: the server a user writes to put a
fine-tuned classifier behind an OpenAI-style /v1/completions route with FastAPI and a transformers
`pipeline("text-classification", top_k=None)`, one forward pass per request. It answers the
benchmark's call (max_tokens=1, logprobs=k) with the top label and the top-k label log-probabilities.

    python benchmarks/naive_server.py MODEL_FOLDER --port 8001 [--device cpu|cuda] [--handler sync|async]

--handler sync (default) is FastAPI's advice for blocking work: a plain `def` route, run in its
thread pool, so requests are classified concurrently; async runs each forward pass on the event
loop, one after the other. --threads sets torch's intra-op threads (default: torch's own choice,
one per core), which on a CPU shared with other work can matter more than anything else.
"""

from __future__ import annotations

import argparse
import math
import time
import uuid

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline


class CompletionRequest(BaseModel):
    model: str
    prompt: str
    max_tokens: int | None = 16
    temperature: float | None = 1.0
    logprobs: int | None = None


def create_app(model_dir: str, device: str = "cpu", handler: str = "sync") -> FastAPI:
    classify = pipeline("text-classification", model=model_dir, tokenizer=model_dir, top_k=None,
                        device=0 if device == "cuda" else -1)
    app = FastAPI()

    def answer(req: CompletionRequest) -> dict:
        scores = classify(req.prompt, truncation=True, max_length=256)
        if scores and isinstance(scores[0], list):  # some versions wrap a single input's answer
            scores = scores[0]
        scores = sorted(scores, key=lambda s: -s["score"])
        top = scores[0]["label"]
        logprobs = None
        if req.logprobs is not None:
            logp = {s["label"]: math.log(max(s["score"], 1e-45)) for s in scores}
            logprobs = {"tokens": [top], "token_logprobs": [logp[top]],
                        "top_logprobs": [dict(list(logp.items())[:req.logprobs])], "text_offset": [0]}
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": req.model, "choices": [{"text": top, "index": 0, "logprobs": logprobs,
                                                 "finish_reason": "stop"}]}

    if handler == "async":
        @app.post("/v1/completions")
        async def completions_async(req: CompletionRequest) -> dict:
            return answer(req)
    else:
        @app.post("/v1/completions")
        def completions(req: CompletionRequest) -> dict:
            return answer(req)

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [{"id": model_dir, "object": "model"}]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--handler", choices=["sync", "async"], default="sync")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    uvicorn.run(create_app(args.model_dir, args.device, args.handler), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
