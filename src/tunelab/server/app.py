"""The HTTP server: OpenAI's API for fine-tuning and for calling fine-tuned models, so code written
against the official `openai` client works by changing only `base_url`.

    app = create_app()                      # store from $TUNELAB_HOME
    uvicorn.run(app, host="127.0.0.1", port=8000)

Routes live per resource in server/<resource>/{routes,protocol,service}.py; this module wires them
with the error envelope (server/errors.py), the request guards (server/auth.py) and the warm-model
pool and batchers (server/batching.py).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from tunelab import __version__
from tunelab.server import errors
from tunelab.server.auth import APIKeyMiddleware, BodyLimitMiddleware, LocalGuardMiddleware
from tunelab.server.batching import DEFAULT_GAP_S, DEFAULT_MAX_BATCH, DEFAULT_WINDOW_S, BatcherRegistry, ModelPool
from tunelab.server.common import ServerState, get_state
from tunelab.store import Store

log = logging.getLogger("tunelab.server")

DEFAULT_MAX_UPLOAD_MB = 512


def create_app(store: Store | None = None, api_keys: Iterable[str] = (), max_loaded_models: int = 2, *,
               cors_origins: Iterable[str] = (), max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20,
               loopback_only: bool = False, max_batch: int = DEFAULT_MAX_BATCH,
               batch_window_s: float = DEFAULT_WINDOW_S, batch_gap_s: float = DEFAULT_GAP_S,
               inference_threads: int = 4, isolate_models: bool = True, loader: Callable | None = None) -> FastAPI:
    """Build the app.

    api_keys: when given, every request needs `Authorization: Bearer <one of them>`.
    max_loaded_models: fine-tuned models kept warm in memory (least recently used evicted).
    cors_origins: browser origins allowed to call the API (none by default: CORS closed).
    max_upload_bytes: request bodies above this get 413.
    loopback_only: answer only requests addressed to localhost (set by `tunelab serve` on a
        loopback address, against DNS rebinding).
    max_batch / batch_window_s / batch_gap_s: on-the-fly batching (see server/batching.py).
    isolate_models: run each loaded model in its own process (server/model_process.py), so that
        inference does not fight the HTTP thread for the GIL. False loads models in this process
        (what the tests do, to skip the process start-up).
    loader: `(model_id, store) -> Predictor` to load models in this process (implies isolate_models=False).
    """
    store = store or Store()
    isolated = loader is None and isolate_models
    if isolated:
        from tunelab.server.model_process import ProcessPredictor as loader
    elif loader is None:
        from tunelab.inference.predictor import load_predictor as loader
    keys = tuple(k for k in api_keys if k)
    origins = tuple(o for o in cors_origins if o)
    state = ServerState(
        store=store, pool=ModelPool(lambda model_id: loader(model_id, store), max_loaded=max_loaded_models),
        batchers=BatcherRegistry(max_batch=max_batch, window_s=batch_window_s, gap_s=batch_gap_s,
                                 threads=inference_threads),
        max_upload_bytes=int(max_upload_bytes), api_keys=keys,
        settings={"max_loaded_models": max_loaded_models, "cors_origins": list(origins), "max_batch": max_batch,
                  "batch_window_s": batch_window_s, "batch_gap_s": batch_gap_s, "loopback_only": loopback_only,
                  "auth": bool(keys), "model_processes": isolated})

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        state.close()

    app = FastAPI(title="tunelab", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible fine-tuning and inference API, served locally.")
    app.state.tunelab = state
    errors.install(app)

    from tunelab.server.chat.routes import router as chat
    from tunelab.server.completions.routes import router as completions
    from tunelab.server.files.routes import router as files
    from tunelab.server.fine_tunes.routes import router as fine_tunes
    from tunelab.server.fine_tuning.routes import router as fine_tuning
    from tunelab.server.labels.routes import router as labels
    from tunelab.server.models.routes import router as models

    for router in (models, files, fine_tuning, fine_tunes, completions, chat, labels):
        app.include_router(router, prefix="/v1")

    @app.get("/v1/tunelab/stats", tags=["tunelab"])
    def stats(st: ServerState = Depends(get_state)):
        """Loaded models and per-model batching counters (how many prompts each forward pass served)."""
        return {"object": "tunelab.stats", "loaded_models": st.pool.loaded(), "settings": st.settings,
                "model_pids": {m: getattr(st.pool.peek(m), "pid", os.getpid()) for m in st.pool.loaded()},
                "batching": {model: s.as_dict() for model, s in st.batchers.stats.items()}}

    # Middleware, innermost first: body limit, API key, local guard, then CORS outermost so that
    # browsers' preflight requests from allowed origins are answered.
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_upload_bytes)
    if keys:
        app.add_middleware(APIKeyMiddleware, keys=keys)
    app.add_middleware(LocalGuardMiddleware, check_host=loopback_only, cors_origins=origins)
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(origins), allow_methods=["*"],
                           allow_headers=["*"], allow_credentials=False)
    return app
