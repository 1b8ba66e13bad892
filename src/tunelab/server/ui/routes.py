"""The dashboard at /ui: jobs, a fine-tune started from the browser, models with their evaluation
reports and Table 4.1, the playground, and monitoring.

Pages are Jinja2 shells with no user data in them (so they are served without the API key, like
a login page); the page's own script (static/js/) asks for the key once, keeps it in session
storage and fills the page from the JSON API with `Authorization: Bearer`: /v1/… where OpenAI's
API has the data, /ui/api/… (below, key required like every other route) where it does not. No
cookies; every value from the API is put into the page as text, never as markup; a
Content-Security-Policy allows scripts, styles, images and requests from this server only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunelab import __version__
from tunelab.server.common import ServerState, get_state
from tunelab.server.ui import service
from tunelab.server.ui.protocol import CompareRequest, EvaluateRequest, PrepareRequest

HERE = Path(__file__).parent
PREFIX = "/ui"
PAGES = {"jobs": "Fine-tuning jobs", "job": "Fine-tuning job", "new": "New fine-tune", "models": "Models",
         "playground": "Playground", "monitor": "Monitoring", "missing": "Page not found"}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix=f"{PREFIX}/api", include_in_schema=False)


def is_page(method: str, path: str) -> bool:
    """A page shell or a static file of the dashboard: served without the API key (they hold no data)."""
    return method in ("GET", "HEAD") and (path == PREFIX or path.startswith(PREFIX + "/")) \
        and not path.startswith(PREFIX + "/api/")


def render(request: Request, page: str, status_code: int = 200, **context) -> HTMLResponse:
    html = templates.get_template(f"{page}.html").render(
        page=page, title=PAGES[page], pages=PAGES, prefix=PREFIX, version=__version__,
        auth=bool(request.app.state.tunelab.api_keys), **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


@pages.get(PREFIX)
@pages.get(PREFIX + "/")
def jobs_page(request: Request):
    return render(request, "jobs")


@pages.get(PREFIX + "/jobs/{job_id}")
def job_page(request: Request, job_id: str):
    return render(request, "job", job_id=job_id)


@pages.get(PREFIX + "/new")
def new_page(request: Request):
    return render(request, "new")


@pages.get(PREFIX + "/models")
def models_page(request: Request):
    return render(request, "models")


@pages.get(PREFIX + "/playground")
def playground_page(request: Request):
    return render(request, "playground")


@pages.get(PREFIX + "/monitor")
def monitor_page(request: Request):
    return render(request, "monitor")


def missing_page(request: Request, rest: str):
    """Any other address under /ui (a mistyped or outdated link): a page in words, with the
    dashboard's navigation, instead of the API's JSON 404. Under /ui/api/ and for other methods a
    missing route stays the API's 404 (a script asked, not a person)."""
    if request.method != "GET" or rest.startswith(("api/", "static/")):
        raise StarletteHTTPException(404)
    return render(request, "missing", status_code=404, path=request.url.path)


# -- data the OpenAI-shaped API does not carry ----------------------------------------------------

@api.get("/jobs/{job_id}/results")
def job_results(job_id: str, state: ServerState = Depends(get_state)):
    """The job's results rows (the growing file while it runs), for the curves."""
    return service.job_results(state.store, job_id)


@api.post("/files/{file_id}/prepare")
def prepare(file_id: str, request: PrepareRequest, state: ServerState = Depends(get_state)):
    """`prepare_data`'s report on an uploaded file and the prepared file(s), which the page then
    uploads through POST /v1/files."""
    return service.prepare_report(state.store, file_id, request.accept, request.split)


@api.post("/datasets/inspect")
async def inspect_raw(file: UploadFile = File(...), state: ServerState = Depends(get_state)):
    """A raw review table's columns and the presets that fit them (nothing is stored)."""
    try:
        return await run_in_threadpool(service.inspect_raw, file.file, file.filename, state.max_upload_bytes)
    finally:
        await file.close()


@api.post("/datasets/build")
async def build_raw(file: UploadFile = File(...), preset: str | None = Form(None),
                    text_columns: str | None = Form(None), label_column: str | None = Form(None),
                    train_size: int | None = Form(None, ge=1), seed: int = Form(42),
                    state: ServerState = Depends(get_state)):
    """`tunelab datasets build` on a raw review table: train/valid/test JSONL texts for the page to
    upload through POST /v1/files (nothing is stored here). `text_columns`: comma-separated."""
    columns = [c.strip() for c in text_columns.split(",") if c.strip()] if text_columns else None
    try:
        return await run_in_threadpool(service.build_raw, file.file, file.filename, preset=preset,
                                       text_columns=columns, label_column=label_column, train_size=train_size,
                                       seed=seed, max_bytes=state.max_upload_bytes)
    finally:
        await file.close()


@api.get("/separator")
def separator(model: str, state: ServerState = Depends(get_state)):
    return service.separator(state.store, model)


@api.get("/evaluations")
def list_evaluations(model: str | None = None, state: ServerState = Depends(get_state)):
    return {"object": "list", "data": service.list_evaluations(state.store, model)}


@api.post("/evaluations")
def evaluate(request: EvaluateRequest, state: ServerState = Depends(get_state)):
    return service.evaluate(state.store, request.model, request.test_file, request.train_file)


@api.get("/evaluations/image")
def evaluation_image(model: str, test_file: str, name: str, state: ServerState = Depends(get_state)):
    return FileResponse(service.report_image(state.store, model, test_file, name), media_type="image/png")


@api.post("/compare")
def compare(request: CompareRequest, state: ServerState = Depends(get_state)):
    return service.compare(state.store, request.models, request.test_file, request.train_file)


@api.get("/monitor")
def monitor(model: str, window: str = "1h", state: ServerState = Depends(get_state)):
    if state.recorder is not None and state.recorder.writer is not None:
        state.recorder.writer.flush()  # what was just served counts
    return service.monitor_report(state.store, model, window)


@api.get("/review")
def review(model: str, limit: int = Query(20, ge=1, le=500), state: ServerState = Depends(get_state)):
    if state.recorder is not None and state.recorder.writer is not None:
        state.recorder.writer.flush()
    return service.review(state.store, model, limit)


def install(app: FastAPI) -> None:
    """Pages, their static files and the dashboard's endpoints, on `app`."""
    app.include_router(pages)
    app.include_router(api)
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    # last: the pages, /ui/api/ and the static files above answer first
    app.add_api_route(PREFIX + "/{rest:path}", missing_page, include_in_schema=False,
                      methods=["GET", "POST", "PUT", "PATCH", "DELETE"])  # any other method: 404, not 405
