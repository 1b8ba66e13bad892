"""Where tunelab keeps its state: `$TUNELAB_HOME`, default `~/.tunelab`."""

from __future__ import annotations

import os
from pathlib import Path


def tunelab_home() -> Path:
    home = Path(os.environ.get("TUNELAB_HOME") or Path.home() / ".tunelab").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def database_url() -> str:
    """SQLAlchemy URL of the store; `TUNELAB_DATABASE_URL` lets several workers share PostgreSQL."""
    return os.environ.get("TUNELAB_DATABASE_URL") or f"sqlite:///{tunelab_home() / 'tunelab.db'}"
