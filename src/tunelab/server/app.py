"""The HTTP server: OpenAI's API for fine-tuning and for calling fine-tuned models, so code written
against the official `openai` client works by changing only `base_url`.

    app = create_app()                      # store from $TUNELAB_HOME
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes live per resource in server/<resource>/{routes,protocol,service}.py; this module wires them
with the error envelope (server/errors.py), the request guards (server/auth.py), the limits on what
a request may cost (server/limits.py), the published contract (server/openapi.py) and the
warm-model pool and batchers (server/batching.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Response

from tunelab import __version__
from tunelab.server import errors
from tunelab.server import openapi
from tunelab.server.auth import APIKeyMiddleware, LocalGuardMiddleware
from tunelab.server.batching import (
    DEFAULT_FAILURE_TTL_S, DEFAULT_GAP_S, DEFAULT_MAX_BATCH, DEFAULT_MAX_QUEUE, DEFAULT_WINDOW_S, BatcherRegistry,
    ModelPool,
)
from tunelab.server.limits import (
    DEFAULT_MAX_BODY_MB, DEFAULT_READ_TIMEOUT_S, DEFAULT_REQUEST_TIMEOUT_S, RequestLimits,
)
from tunelab.server.common import RequestIdMiddleware, ServerState, get_state
from tunelab.server.metrics import ServerMetrics
from tunelab.server.prediction_log import PredictionRecorder, prompt_columns
from tunelab.store import Store
from tunelab.store.predictions import DEFAULT_FLUSH_MS, DEFAULT_FLUSH_ROWS, PredictionLogWriter

log = logging.getLogger("tunelab.server")

DEFAULT_MAX_UPLOAD_MB = 512


def create_app(store: Store | None = None, api_keys: Iterable[str] = (), max_loaded_models: int = 2, *,
               cors_origins: Iterable[str] = (), max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20,
               loopback_only: bool = False, max_batch: int = DEFAULT_MAX_BATCH,
               batch_window_s: float = DEFAULT_WINDOW_S, batch_gap_s: float = DEFAULT_GAP_S,
               inference_threads: int = 4, isolate_models: bool | str = True, loader: Callable | None = None,
               decision: str = "argmax", prediction_log: bool = True, log_text: bool = True,
               log_keep_days: float | None = None, log_flush_rows: int = DEFAULT_FLUSH_ROWS,
               log_flush_ms: float = DEFAULT_FLUSH_MS, metrics: bool = True,
               max_body_bytes: int = int(DEFAULT_MAX_BODY_MB * 2**20), max_queue: int | None = DEFAULT_MAX_QUEUE,
               request_timeout_s: float | None = DEFAULT_REQUEST_TIMEOUT_S,
               read_timeout_s: float | None = DEFAULT_READ_TIMEOUT_S,
               load_failure_ttl_s: float = DEFAULT_FAILURE_TTL_S,
               worker_check_s: float | None = None) -> FastAPI:
    """Build the app.

    api_keys: when given, every request needs `Authorization: Bearer <one of them>`.
    max_loaded_models: fine-tuned models kept warm in memory (least recently used evicted).
    cors_origins: browser origins allowed to call the API (none by default: CORS closed).
    max_upload_bytes: file uploads (POST /v1/files) above this get 413.
    max_body_bytes: any other request body above this (or above max_upload_bytes) gets 413.
    max_queue: prompts that may wait per model; more get 429 with Retry-After (None: no bound).
    request_timeout_s: a request still waiting for its model or its batch after this long gets a
        503 with Retry-After (None: no deadline).
    read_timeout_s: a body must arrive within this (an upload: pause no longer); 408 otherwise.
    load_failure_ttl_s: a model that failed to load is not tried again for this long; requests for
        it get the same error at once.
    loopback_only: answer only requests addressed to localhost (set by `tunelab serve` on a
        loopback address, against DNS rebinding).
    max_batch / batch_window_s / batch_gap_s: on-the-fly batching (see server/batching.py).
    isolate_models: run each loaded model in its own process (server/model_process.py), so that
        inference does not fight the HTTP thread for the GIL. False loads models in this process
        (what the tests do, to skip the process start-up). `tunelab serve --model-processes` passes
        "always", "never" (in this process, with its threads set up for serving: server/inprocess.py)
        or "auto": never on a CPU, where the inter-process hop costs more than the GIL does, always
        on a GPU.
    loader: `(model_id, store) -> Predictor` to load models in this process (implies isolate_models=False).
    decision: which label classification models answer /v1/completions with: argmax (default), or
        for ordinal labels median / good_vs_bad (tunelab.data.labels.DECISION_RULES); models whose
        labels are not ordinal keep argmax.
    prediction_log: record every answer of a fine-tuned model in the store's prediction log
        (tunelab.store.predictions), batched off the request path: every `log_flush_rows` rows or
        `log_flush_ms` ms. log_text=False keeps no prompt text (`tunelab serve --no-log-text`);
        log_keep_days deletes older predictions (on start, then hourly).
    metrics: serve Prometheus metrics at GET /metrics (server/metrics.py).
    worker_check_s: on start and then every so many seconds, start a background worker if a job waits
        and none runs (tunelab.jobs.submit.serve_the_queue); `tunelab serve` sets it. None: never.
    """
    store = store or Store()
    serving = isolate_models in ("auto", "always", "never")  # `tunelab serve`: this process serves
    in_flight = 1  # batches per model at once: one per replica of an in-process model
    if isolate_models == "auto":
        from tunelab.server.inprocess import models_in_processes

        isolate_models = "always" if models_in_processes() else "never"
    isolated = loader is None and isolate_models not in (False, "never")
    if isolated:
        from tunelab.server.model_process import ProcessPredictor as loader
    elif loader is None and serving:
        from tunelab.server.inprocess import load_in_process as loader
        from tunelab.server.inprocess import replicas

        in_flight = replicas()
    elif loader is None:
        from tunelab.inference.predictor import load_predictor as loader
    keys = tuple(k for k in api_keys if k)
    origins = tuple(o for o in cors_origins if o)
    from tunelab.data.labels import check_decision_rule

    check_decision_rule(decision, ["1", "2"])  # the name only; each model's labels are checked when it loads

    def load(model_id: str):
        if decision == "argmax":
            return loader(model_id, store)
        return loader(model_id, store, decision=_rule_for(store, model_id, decision))

    state = ServerState(
        store=store, pool=ModelPool(load, max_loaded=max_loaded_models, failure_ttl_s=load_failure_ttl_s),
        batchers=BatcherRegistry(max_batch=max_batch, window_s=batch_window_s, gap_s=batch_gap_s,
                                 threads=max(inference_threads, in_flight), max_queue=max_queue,
                                 max_in_flight=in_flight),
        max_upload_bytes=int(max_upload_bytes), api_keys=keys,
        settings={"max_loaded_models": max_loaded_models, "cors_origins": list(origins), "max_batch": max_batch,
                  "batch_window_s": batch_window_s, "batch_gap_s": batch_gap_s, "loopback_only": loopback_only,
                  "auth": bool(keys), "model_processes": isolated, "decision": decision})

    server_metrics = None
    if metrics:
        server_metrics = ServerMetrics(lambda: {"queued": state.batchers.queued_prompts(),
                                                "loaded_models": len(state.pool.loaded()),
                                                "log": state.recorder.writer if state.recorder else None})
        state.batchers.on_batch = server_metrics.observe_batch
    writer = None
    if prediction_log:
        writer = PredictionLogWriter(store, flush_rows=log_flush_rows, flush_ms=log_flush_ms, keep_text=log_text,
                                     keep_days=log_keep_days, enrich=prompt_columns)
        if log_keep_days is not None:
            writer.start()  # prune now, not at the first request
    state.recorder = PredictionRecorder(writer, server_metrics)
    state.metrics = server_metrics
    state.settings.update(prediction_log=prediction_log, log_text=log_text, log_keep_days=log_keep_days,
                          metrics=metrics)
    state.settings.update(max_body_bytes=min(int(max_body_bytes), int(max_upload_bytes)),
                          max_upload_bytes=int(max_upload_bytes), max_queue=max_queue,
                          request_timeout_s=request_timeout_s, read_timeout_s=read_timeout_s,
                          load_failure_ttl_s=load_failure_ttl_s, worker_check_s=worker_check_s)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        watcher = asyncio.create_task(_watch_workers(store, worker_check_s)) if worker_check_s else None
        yield
        if watcher is not None:
            watcher.cancel()
        state.close()

    app = FastAPI(title="tunelab", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible fine-tuning and inference API, served locally.")
    app.state.tunelab = state
    errors.install(app)
    openapi.install(app)

    from tunelab.server.chat.routes import router as chat
    from tunelab.server.feedback.routes import router as feedback
    from tunelab.server.completions.routes import router as completions
    from tunelab.server.files.routes import router as files
    from tunelab.server.fine_tunes.routes import router as fine_tunes
    from tunelab.server.fine_tuning.routes import router as fine_tuning
    from tunelab.server.labels.routes import router as labels
    from tunelab.server.models.routes import router as models

    for router in (models, files, fine_tuning, fine_tunes, completions, chat, labels, feedback):
        app.include_router(router, prefix="/v1")
    from tunelab.server.ui import routes as ui

    ui.install(app)  # the dashboard at /ui

    if server_metrics is not None:
        @app.get("/metrics", tags=["tunelab"], include_in_schema=False)
        def prometheus_metrics():
            """Prometheus metrics (text exposition format); see tunelab.server.metrics."""
            body, content_type = server_metrics.render()
            return Response(body, media_type=content_type)

    @app.get("/v1/tunelab/stats", tags=["tunelab"])
    def stats(st: ServerState = Depends(get_state)):
        """Loaded models and per-model batching counters (how many prompts each forward pass served)."""
        return {"object": "tunelab.stats", "loaded_models": st.pool.loaded(), "settings": st.settings,
                "model_pids": {m: getattr(st.pool.peek(m), "pid", os.getpid()) for m in st.pool.loaded()},
                "batching": {model: s.as_dict() for model, s in st.batchers.stats.items()}}

    # Middleware, innermost first: OPTIONS and Allow, request limits (body size and time, hostile
    # JSON, the request's deadline), API key, local guard, metrics, x-request-id, then CORS outermost so that browsers'
    # preflight requests from allowed origins are answered.
    app.add_middleware(openapi.MethodsMiddleware, routes=app.router.routes)
    app.add_middleware(RequestLimits, max_body_bytes=max_body_bytes, max_upload_bytes=max_upload_bytes,
                       read_timeout_s=read_timeout_s, request_timeout_s=request_timeout_s)
    if keys:
        app.add_middleware(APIKeyMiddleware, keys=keys, public=ui.is_page)
    app.add_middleware(LocalGuardMiddleware, check_host=loopback_only, cors_origins=origins)
    if server_metrics is not None:  # outside the guards, so refused requests are counted too
        app.add_middleware(server_metrics.middleware_class, metrics=server_metrics)
    app.add_middleware(RequestIdMiddleware)  # refused requests get an id too
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(origins), allow_methods=["*"],
                           allow_headers=["*"], allow_credentials=False)
    return app


def _rule_for(store: Store, model_id: str, decision: str) -> str:
    """`decision` for a model with ordinal labels; argmax for any other (categorical labels, free text)."""
    from tunelab.data.labels import is_ordinal

    record = store.find_model(model_id)
    return decision if record is not None and record.labels and is_ordinal(record.labels) else "argmax"


async def _watch_workers(store: Store, every_s: float) -> None:
    """Keep the job queue served while the server runs: a worker that died mid-job (kill -9, the OOM
    killer) leaves the job `running` until a next worker finds it, and with only the server running
    nothing would start one (the CLI's follow does; the dashboard and API clients cannot)."""
    from tunelab.jobs.submit import serve_the_queue

    while True:
        try:
            await asyncio.to_thread(serve_the_queue, store)
        except Exception as exc:  # noqa: BLE001 - a locked or unreachable database: try again next time
            log.warning("Could not check the job queue's worker: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(every_s)
