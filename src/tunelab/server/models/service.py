"""Models: packaged base models, their OpenAI aliases and fine-tuned models from the store; which of
them can answer requests; and loading them into the warm pool."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from tunelab.errors import NotFoundError, TunelabError
from tunelab.jobs import views
from tunelab.models.meta import CAUSAL
from tunelab.models.registry import BASE_MODELS, check_installed, is_base_name, resolve_model
from tunelab.server.common import ServerState
from tunelab.server.errors import APIError, from_tunelab_error, model_not_found
from tunelab.server.models.protocol import Model, ModelDeleted
from tunelab.store import Store
from tunelab.store.records import TERMINAL


def list_models(store: Store) -> list[Model]:
    return [Model.model_validate(v) for v in views.model_views(store)]


def retrieve_model(store: Store, model_id: str) -> Model:
    try:
        return Model.model_validate(views.find_model_view(store, model_id))
    except NotFoundError:
        raise model_not_found(model_id) from None


def delete_model(state: ServerState, model_id: str) -> ModelDeleted:
    store = state.store
    record = store.find_model(model_id)
    if record is None:
        if is_base_name(model_id):
            raise APIError(403, f"{model_id} is a base model; only fine-tuned models can be deleted.",
                           type="permission_error", param="model", code="base_model_not_deletable")
        raise model_not_found(model_id)
    if not _registered(store, record.id):  # found as a job's checkpoint (store.find_model)
        raise APIError(409, f"{model_id} is a checkpoint of job {record.job_id}; it is removed with the job's "
                            "checkpoints (DELETE the job), not on its own.", param="model", code="checkpoint")
    busy = [j.id for j in store.list_jobs() if j.parent_model == record.id and j.status not in TERMINAL]
    if busy:
        raise APIError(409, f"{model_id} is being continued by job(s) {', '.join(busy)}; cancel them or wait "
                            "for them to finish before deleting it.", param="model", code="model_in_use")
    state.pool.evict(record.id)
    store.delete_model(record.id)
    return ModelDeleted(id=record.id, deleted=True)


def _registered(store: Store, model_id: str) -> bool:
    try:
        store.get_model(model_id)
    except NotFoundError:
        return False
    return True


def servable_id(store: Store, model_id: str) -> str:
    """The pool key of a model that may answer requests; 404 for anything else. Only store models and
    packaged base names are served: never a folder path or a hub id given over HTTP."""
    if not model_id:
        raise APIError(400, "You must provide a model parameter.", param="model")
    if store.find_model(model_id) is not None:
        return model_id
    lowered = model_id.lower()
    if is_base_name(lowered):
        check_base_servable(lowered)
        return lowered
    raise model_not_found(model_id)


def check_base_servable(name: str) -> None:
    """What loading a base model would refuse, found without starting a model process (seconds,
    and the memory of one): an encoder has no completions (400); weights not installed (404)."""
    spec = BASE_MODELS[resolve_model(name, classification=False, materialize=False).base_model]
    if spec.kind != CAUSAL:
        raise APIError(400, f"{name} is an encoder base model; it has no completions until fine-tuned.",
                       param="model", code="model_not_servable")
    try:
        check_installed(spec)
    except TunelabError as exc:
        raise from_tunelab_error(exc, param="model") from None


async def get_predictor(state: ServerState, model_id: str):
    """A warm predictor for `model_id`, loading it (once) if needed."""
    pool = state.pool
    if model_id in pool.loaded():
        return await pool.get(model_id)
    key = await run_in_threadpool(servable_id, state.store, model_id)
    try:
        return await pool.get(key)
    except TunelabError as exc:
        raise from_tunelab_error(exc, param="model") from None
