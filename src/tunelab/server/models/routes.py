"""GET /v1/models, GET /v1/models/{model}, DELETE /v1/models/{model} (fine-tuned models only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from tunelab.server.common import ListObject, ServerState, get_state, list_of
from tunelab.server.models import service
from tunelab.server.models.protocol import Model, ModelDeleted

router = APIRouter(tags=["models"])


@router.get("/models", response_model=ListObject[Model])
def list_models(state: ServerState = Depends(get_state)):
    """Base models (minilm-l6, smollm2-135m), their OpenAI aliases and every fine-tuned model."""
    return list_of(service.list_models(state.store))


# Fine-tuned ids contain ':' and may contain '/', hence the path converter.
@router.get("/models/{model:path}", response_model=Model)
def retrieve_model(model: str, state: ServerState = Depends(get_state)):
    return service.retrieve_model(state.store, model)


@router.delete("/models/{model:path}", response_model=ModelDeleted)
def delete_model(model: str, state: ServerState = Depends(get_state)):
    """Delete a fine-tuned model and its weights. Base models cannot be deleted (403)."""
    return service.delete_model(state, model)
