"""OpenAI-compatible HTTP API (`tunelab serve`). See tunelab.server.app.create_app.

What the CLI needs to start it is exported here, so `tunelab serve` depends on this package's
entry points only, never on its routes or services."""

from tunelab.server.app import create_app
from tunelab.server.auth import is_loopback
from tunelab.server.serving import run

__all__ = ["create_app", "is_loopback", "run"]
