"""Where tunelab keeps its state: `$TUNELAB_HOME`, default `~/.tunelab`."""

from __future__ import annotations

import os
from pathlib import Path

from tunelab.errors import TunelabError


def tunelab_home() -> Path:
    return make_home(Path(os.environ.get("TUNELAB_HOME") or Path.home() / ".tunelab").expanduser())


def make_home(home: Path) -> Path:
    """Create the store's folder; one that cannot be (a file in the way, a read-only disk) is a
    TunelabError naming it, not an OSError traceback."""
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = "it is a file, not a folder" if home.is_file() else exc.strerror or str(exc)
        raise TunelabError(f"Cannot use {home} as the tunelab store (TUNELAB_HOME): {reason}.",
                           hint="Point TUNELAB_HOME at a writable folder (it is created if needed).") from None
    return home


def database_url() -> str:
    """SQLAlchemy URL of the store; `TUNELAB_DATABASE_URL` lets several workers share PostgreSQL."""
    return os.environ.get("TUNELAB_DATABASE_URL") or f"sqlite:///{tunelab_home() / 'tunelab.db'}"
