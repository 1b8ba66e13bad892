"""`/v1/files` objects, in OpenAI's field order (openai.types.FileObject, FileDeleted)."""

from __future__ import annotations

from typing import Literal

from tunelab.server.common import ResponseModel

PURPOSES = ("fine-tune",)


class FileObject(ResponseModel):
    id: str
    bytes: int
    created_at: int
    filename: str
    object: Literal["file"] = "file"
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    expires_at: int | None = None
    status_details: str | None = None
    # --- tunelab extensions ---
    n_rows: int | None = None
    """Examples in the file (validated prompt/completion rows)."""
    sha256: str | None = None


class FileDeleted(ResponseModel):
    id: str
    deleted: bool
    object: Literal["file"] = "file"
