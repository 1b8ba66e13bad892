"""Feedback on served predictions, through tunelab.monitoring.feedback (which checks the id and
the label and writes the feedback table); this module maps its errors onto the API's envelope."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool

from tunelab.errors import InvalidInputError, NotFoundError
from tunelab.monitoring.feedback import add_feedback
from tunelab.server.common import ServerState
from tunelab.server.errors import bad_request, not_found
from tunelab.server.feedback.protocol import Feedback, FeedbackRequest
from tunelab.server.prediction_log import Caller, check_tags


async def create_feedback(state: ServerState, request: FeedbackRequest, caller: Caller) -> Feedback:
    check_tags(request.user, request.metadata)
    if request.id is None and (request.text is None or request.model is None):
        raise bad_request("Give the `id` of a response (and the prompt's `index`), or a `model` and the `text` the "
                          "label is for.", param="id" if request.text is None else "model")
    if request.id is not None and request.text is not None:
        raise bad_request("Give either `id` or `text`, not both: feedback on a response uses its logged prompt.",
                          param="text")
    label = str(request.label)  # 4 as "4", as `tunelab feedback import` reads a file's numbers
    if not label.strip():
        raise bad_request("'label' is empty.", param="label")
    writer = state.recorder.writer if state.recorder is not None else None
    try:
        result = await run_in_threadpool(
            add_feedback, state.store, label=label, response_id=request.id, index=request.index,
            model=request.model, text=request.text, source=request.source, api_key_id=caller.api_key_id,
            end_user=request.user, metadata=request.metadata, flush=writer.flush if writer is not None else None)
    except NotFoundError as exc:
        if request.id is not None:
            raise not_found(exc.render(), param="id", code="prediction_not_found") from None
        raise not_found(exc.render(), param="model", code="model_not_found") from None
    except InvalidInputError as exc:
        raise bad_request(exc.render(), param="label", code="invalid_label") from None
    record = result.feedback
    return Feedback(id=record.id, created_at=int(record.created_at), model=record.model,
                    response_id=record.response_id, index=record.prompt_index, label=record.label,
                    prediction=result.prediction.prediction if result.prediction else None,
                    correct=result.correct, source=record.source)
