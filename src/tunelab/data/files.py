"""Data files, whichever way a caller names them: a path on this machine or the id of a file in the
store (`file-…`). Job planning, evaluation and the Python API all resolve them here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunelab.data.readers import Example, read_prompt_completion
from tunelab.errors import NotFoundError
from tunelab.store import Store
from tunelab.store.ids import is_valid_id

FINE_TUNE = "fine-tune"


@dataclass(frozen=True)
class DataFile:
    path: Path
    """Where the rows were read from (the store's copy for a file id)."""
    file_id: str | None
    """The store's id: the one given, or the upload's; None for a path that was not uploaded."""
    rows: list[Example]


def resolve_path(store: Store, ref: str | Path, role: str = "training") -> tuple[Path, str | None]:
    """(path, file id or None). Messages start with "The <role> file <ref>" so that a caller
    listing several problems can name the file the way the user did."""
    text = str(ref)
    if is_valid_id(text, "file"):
        try:
            return Path(store.get_file(text).path), text
        except NotFoundError:
            raise NotFoundError(f"The {role} file {text} is not in the store.",
                                hint="List files with `tunelab api files.list`.") from None
    path = Path(text).expanduser()
    if not path.exists():
        raise NotFoundError(f"The {role} file {text} does not exist.",
                            hint="Give a path to a JSONL file with prompt/completion rows, or a file id (file-…).")
    return path, None


def load_data_file(store: Store, ref: str | Path, role: str = "training", *, upload: bool = False) -> DataFile:
    """Resolve and parse a prompt/completion file (DataFileError lists every bad line). With
    `upload`, a path is copied into the store, as `fine_tunes.create -t PATH` always did, so the
    job keeps its data even if the original file changes."""
    path, file_id = resolve_path(store, ref, role)
    rows = read_prompt_completion(path)
    if upload and file_id is None:
        file_id = store.add_file(path, purpose=FINE_TUNE, n_rows=len(rows)).id
    return DataFile(path=path, file_id=file_id, rows=rows)
