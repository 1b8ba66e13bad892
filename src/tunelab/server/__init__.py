"""OpenAI-compatible HTTP API (`tunelab serve`). See tunelab.server.app.create_app.

`tunelab serve` does not import this package: it hands uvicorn the import string of
`tunelab.server.entry.app_from_environment` (tunelab.netserve)."""

from tunelab.server.app import create_app

__all__ = ["create_app"]
