"""OpenAI-compatible HTTP API (`tunelab serve`). See tunelab.server.app.create_app."""

from tunelab.server.app import create_app

__all__ = ["create_app"]
