"""Atomic file writes: a crash leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from tunelab.errors import DiskFullError, InvalidInputError, TunelabError


def _read_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (os.umask only reads by
    setting, which another thread creating a file at that moment would see)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _mode_for(path: Path, default: int) -> int:
    """The permissions a written file or folder gets: those of the one it replaces, else what
    open()/mkdir() would give it (mkstemp and mkdtemp make theirs private: 0600 and 0700)."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return default & ~_UMASK


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    path = Path(path)
    if path.is_dir():  # a --plot or --out naming a folder: say so, not IsADirectoryError after the work
        raise InvalidInputError(f"{path} is a directory; give the path of a file to write.")
    output_dir(path.parent, name="")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), _mode_for(path, 0o666))
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:  # a write's ENOSPC names no file: name it
            raise OSError(exc.errno, exc.strerror, str(path)) from None
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def write_json(path: str | Path, obj) -> None:
    with atomic_open(path) as fh:
        json.dump(obj, fh, indent=2, ensure_ascii=False)
        fh.write("\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it into place only when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _mode_for(path, 0o777))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def disk_full_names(folder: str | Path, what: str = "files") -> Iterator[None]:
    """Turn "No space left on device" while writing `what` into `folder` into a DiskFullError that
    names the folder (the OSError alone often names no file, or a temporary one). safetensors says
    it with an error of its own ("I/O error: No space left on device (os error 28)"): the same."""
    try:
        yield
    except Exception as exc:
        if not (exc.errno == errno.ENOSPC if isinstance(exc, OSError) else _says_disk_full(exc)):
            raise
        raise DiskFullError(f"No space left on the device while writing {what} to {folder}.", folder=str(folder),
                            hint="Free space on that disk (`tunelab models prune` deletes old epoch checkpoints "
                                 "and models you no longer need), then create the job again.") from exc


def _says_disk_full(exc: Exception) -> bool:
    """A library's own error for ENOSPC (safetensors' SafetensorError wraps the OS error in its text)."""
    return type(exc).__name__ == "SafetensorError" and (
        f"os error {errno.ENOSPC})" in str(exc) or "No space left on device" in str(exc))


def output_dir(path: str | Path, *, create: bool = True, name: str = "--out") -> Path:
    """The folder a command writes its report or files to (`name`: the option that gave it),
    created unless `create` is False (a check before minutes of work). A path that is a file, or
    under one, is an InvalidInputError naming it; another reason it cannot be created a TunelabError."""
    out = Path(path)
    blocker = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise InvalidInputError(f"{name + ' ' if name else ''}{out} is " + ("a file" if blocker == out else f"under {blocker}, a file")
                                + ", not a directory.", hint="Give the path of a folder (it is created if needed).")
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TunelabError(f"Cannot create the folder {out}: {exc.strerror or exc}.") from None
    return out
