"""Uploads are validated before they are stored, the way `fine_tunes.prepare_data` checks a file:
every row must have text `prompt` and `completion`, or be a chat example (`messages`, checked like
OpenAI's format checker: tunelab.data.chat); a bad file is refused with a 400 that names each bad line. JSONL is the API's format; CSV, TSV, XLSX and JSON are accepted by file name, and a
`.gz` upload is stored decompressed."""

from __future__ import annotations

import gzip
import re
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO

from tunelab.data.readers import detect_format
from tunelab.errors import DataFileError, NotFoundError, RawTableError
from tunelab.jobs import views
from tunelab.jobs.files import jobs_using, upload_file
from tunelab.server.common import page
from tunelab.server.errors import APIError, bad_request, not_found
from tunelab.server.files.protocol import PURPOSES, FileDeleted, FileObject
from tunelab.store import FileRecord, Store
from tunelab.store.ids import is_valid_id

_EXT = {"csv": ".csv", "tsv": ".tsv", "xlsx": ".xlsx", "json": ".json", "jsonl": ".jsonl"}
_SAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def to_object(record: FileRecord) -> FileObject:
    return FileObject.model_validate(views.file_view(record))


def clean_filename(name: str | None) -> str:
    base = Path((name or "").replace("\\", "/")).name
    base = _SAFE.sub("_", base).strip(" .")
    return base[:200] or "upload.jsonl"


EXPIRY_SECONDS = (3600, 2592000)
"""The range OpenAI allows for `expires_after[seconds]`: an hour to 30 days."""


def expiry_seconds(anchor: str | None, seconds: str | None) -> int | None:
    """OpenAI's `expires_after` ({anchor: "created_at", seconds}) as seconds, or None when not given."""
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise bad_request(f"expires_after[anchor] must be 'created_at', got {anchor!r}.", param="expires_after")
    try:
        value = int(seconds or "")
    except ValueError:
        raise bad_request(f"expires_after[seconds] must be a whole number of seconds, got {seconds!r}.",
                          param="expires_after") from None
    low, high = EXPIRY_SECONDS
    if not low <= value <= high:
        raise bad_request(f"expires_after[seconds] must be between {low} (an hour) and {high} (30 days), got "
                          f"{value}.", param="expires_after")
    return value


def create_file(store: Store, stream: BinaryIO, filename: str | None, purpose: str,
                expires_after: int | None = None, max_bytes: int | None = None) -> FileObject:
    if purpose not in PURPOSES:
        raise bad_request(f"'{purpose}' is not a supported purpose. This server stores fine-tuning data: "
                          f"use purpose {' or '.join(repr(p) for p in PURPOSES)}.", param="purpose")
    name = clean_filename(filename)
    with tempfile.TemporaryDirectory(prefix="tunelab-upload-") as tmp:
        path, stored_name = spool(stream, name, Path(tmp), max_bytes)
        try:
            record = upload_file(store, path, purpose, filename=stored_name, expires_after=expires_after)
        except DataFileError as exc:
            message = exc.render().replace(str(path), name)  # the client's name, not our temporary path
            # A raw table has its own code, so that the dashboard can offer to build files from it.
            code = "raw_table" if isinstance(exc, RawTableError) else "invalid_file"
            raise bad_request(f"Invalid file {name}: {message}", param="file", code=code) from None
    return to_object(record)


def spool(stream: BinaryIO, name: str, folder: Path, max_bytes: int | None = None) -> tuple[Path, str]:
    """An uploaded stream written to `folder` under a name whose extension says its format (`.gz`
    decompressed); returns the path and the name to show for it (without `.gz`). `max_bytes`: the
    server's upload limit, which the decompressed file must keep too (413 otherwise)."""
    try:
        fmt, compressed = detect_format(name)
    except DataFileError:
        fmt, compressed = "jsonl", False  # the API's format; an unknown or missing extension means JSONL
    path = folder / ("upload" + _EXT[fmt])
    with open(path, "wb") as out:
        if compressed:
            try:
                with gzip.GzipFile(fileobj=stream, mode="rb") as gz:
                    _copy_at_most(gz, out, max_bytes, name)
            except (OSError, EOFError, zlib.error) as exc:
                raise bad_request(f"{name}: cannot decompress the file: {exc}", param="file") from None
        else:
            shutil.copyfileobj(stream, out, 1 << 20)
    if path.stat().st_size == 0:
        raise bad_request(f"{name} is empty.", param="file")
    return path, name[:-3] if compressed and name.lower().endswith(".gz") else name


def _copy_at_most(source: BinaryIO, out: BinaryIO, max_bytes: int | None, name: str) -> None:
    """Decompress no more than the upload limit: the limit counts the compressed bytes that
    arrive, and a few MB of gzipped zeros would otherwise fill the disk with gigabytes."""
    written = 0
    while chunk := source.read(1 << 20):
        written += len(chunk)
        if max_bytes is not None and written > max_bytes:
            raise APIError(413, f"{name} decompresses to more than this server's upload limit of "
                                f"{max_bytes / 2**20:g} MB (tunelab serve --max-upload-mb).", param="file",
                           code="request_too_large")
        out.write(chunk)


def get_record(store: Store, file_id: str) -> FileRecord:
    if not is_valid_id(file_id, "file"):
        raise not_found(f"No such File object: {file_id} (file ids look like file-…).", param="id",
                        code="file_not_found")
    try:
        return store.get_file(file_id)
    except NotFoundError:
        raise not_found(f"No such File object: {file_id}", param="id", code="file_not_found") from None


def list_files(store: Store, *, purpose: str | None, limit: int, order: str, after: str | None) -> tuple[list[FileObject], bool]:
    records = store.list_files()  # newest first
    if purpose:
        records = [r for r in records if r.purpose == purpose]
    if order == "asc":
        records = records[::-1]
    records, more = page(records, after=after, limit=limit, unknown="No such File object: {after}")
    return [to_object(r) for r in records], more


def delete_file(store: Store, file_id: str) -> FileDeleted:
    record = get_record(store, file_id)
    users = jobs_using(store, record.id)
    if users:
        raise APIError(409, f"{record.id} is used by job(s) {', '.join(users)} that have not finished; "
                            "cancel them or wait before deleting it.", param="id", code="file_in_use")
    store.delete_file(record.id)
    return FileDeleted(id=record.id, deleted=True)


def content_path(store: Store, file_id: str) -> tuple[Path, FileRecord]:
    record = get_record(store, file_id)
    path = Path(record.path)
    # The path comes from the store, never from the request; still, serve only files inside it.
    if not path.resolve().is_relative_to(store.home.resolve()) or not path.is_file():
        raise not_found(f"The content of {record.id} is missing from the store.", param="id", code="file_not_found")
    return path, record
