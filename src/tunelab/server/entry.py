"""The app `tunelab serve` runs: uvicorn imports this module by name (tunelab.netserve.APP_FACTORY)
and calls the factory, which reads create_app's options from the environment."""

from __future__ import annotations

from fastapi import FastAPI

from tunelab.netserve import app_options_from_environment
from tunelab.server.app import create_app


def app_from_environment() -> FastAPI:
    return create_app(**app_options_from_environment())
