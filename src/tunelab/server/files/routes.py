"""POST /v1/files (multipart: file, purpose), GET /v1/files, GET/DELETE /v1/files/{file_id},
GET /v1/files/{file_id}/content."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from tunelab.server.common import ListObject, ServerState, get_state, list_of
from tunelab.server.files import service
from tunelab.server.files.protocol import FileDeleted, FileObject

router = APIRouter(tags=["files"])


@router.post("/files", response_model=FileObject)
async def create_file(file: UploadFile = File(...), purpose: str = Form(...),
                      expires_anchor: str | None = Form(None, alias="expires_after[anchor]"),
                      expires_seconds: str | None = Form(None, alias="expires_after[seconds]"),
                      state: ServerState = Depends(get_state)):
    """Upload a fine-tuning file. It is validated first; a bad file is a 400 naming every bad line.
    `expires_after` ({"anchor": "created_at", "seconds": 3600 to 2592000}) deletes it that long after
    the upload, once no unfinished job needs it."""
    expires_after = service.expiry_seconds(expires_anchor, expires_seconds)
    try:
        return await run_in_threadpool(service.create_file, state.store, file.file, file.filename, purpose,
                                       expires_after, state.max_upload_bytes)
    finally:
        await file.close()


@router.get("/files", response_model=ListObject[FileObject])
def list_files(purpose: str | None = None, limit: int = Query(10000, ge=1, le=10000),
               order: Literal["asc", "desc"] = "desc", after: str | None = None,
               state: ServerState = Depends(get_state)):
    data, more = service.list_files(state.store, purpose=purpose, limit=limit, order=order, after=after)
    return list_of(data, more)


@router.get("/files/{file_id}", response_model=FileObject)
def retrieve_file(file_id: str, state: ServerState = Depends(get_state)):
    return service.to_object(service.get_record(state.store, file_id))


@router.delete("/files/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, state: ServerState = Depends(get_state)):
    return service.delete_file(state.store, file_id)


@router.get("/files/{file_id}/content")
def file_content(file_id: str, state: ServerState = Depends(get_state)):
    path, record = service.content_path(state.store, file_id)
    return FileResponse(path, media_type="application/octet-stream", filename=record.filename)
