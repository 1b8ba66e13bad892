"""Legacy API: POST/GET /v1/fine-tunes, GET /v1/fine-tunes/{id}, POST /v1/fine-tunes/{id}/cancel,
GET /v1/fine-tunes/{id}/events[?stream=true], DELETE /v1/fine-tunes/{model or id}. Ids `ft-…` and `ftjob-…` are both accepted."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from tunelab.server.common import ServerState, get_state
from tunelab.server.fine_tunes import service
from tunelab.server.fine_tunes.protocol import FineTune, FineTuneCreateRequest
from tunelab.server.fine_tuning import service as jobs

router = APIRouter(tags=["fine-tunes (legacy)"])


@router.post("/fine-tunes", response_model=FineTune)
def create_fine_tune(request: FineTuneCreateRequest, state: ServerState = Depends(get_state)):
    return service.create(state.store, request)


@router.get("/fine-tunes")
def list_fine_tunes(state: ServerState = Depends(get_state)):
    return {"object": "list", "data": [f.model_dump() for f in service.list_all(state.store)]}


@router.get("/fine-tunes/{fine_tune_id}", response_model=FineTune)
def retrieve_fine_tune(fine_tune_id: str, state: ServerState = Depends(get_state)):
    return service.to_object(state.store, jobs.get_job(state.store, fine_tune_id), with_events=True)


@router.post("/fine-tunes/{fine_tune_id}/cancel", response_model=FineTune)
def cancel_fine_tune(fine_tune_id: str, state: ServerState = Depends(get_state)):
    jobs.cancel_job(state.store, fine_tune_id)
    return service.to_object(state.store, jobs.get_job(state.store, fine_tune_id), with_events=True)


@router.delete("/fine-tunes/{fine_tune_id:path}")
def delete_fine_tune(fine_tune_id: str, state: ServerState = Depends(get_state)):
    """The legacy delete: a fine-tuned model id deletes the model (as DELETE /v1/models/{model}); a
    job id (ft-… or ftjob-…) deletes the finished job with its events and checkpoints (not its model)."""
    return service.delete(state, fine_tune_id)


@router.get("/fine-tunes/{fine_tune_id}/events")
def list_fine_tune_events(fine_tune_id: str, stream: bool = False, state: ServerState = Depends(get_state)):
    """Oldest first. With stream=true, server-sent events follow the job until it ends (`data: [DONE]`)."""
    job = jobs.get_job(state.store, fine_tune_id)
    if stream:
        return StreamingResponse(service.stream_events(state.store, job.id), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})
    epochs = service.n_epochs(job)
    return {"object": "list",
            "data": [service.event_object(e, epochs).model_dump() for e in state.store.list_events(job.id)]}
