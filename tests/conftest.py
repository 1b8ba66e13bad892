"""Shared fixtures. Every test gets its own TUNELAB_HOME so nothing touches the user's store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    """Converted base weights (SmolLM2 from GGUF) are cached once per test session, not per test."""
    return tmp_path_factory.mktemp("tunelab-cache")


@pytest.fixture(autouse=True)
def tunelab_home(tmp_path, monkeypatch, model_cache) -> Path:
    home = tmp_path / "tunelab-home"
    monkeypatch.setenv("TUNELAB_HOME", str(home))
    monkeypatch.setenv("TUNELAB_CACHE", str(model_cache))
    monkeypatch.delenv("TUNELAB_DATABASE_URL", raising=False)
    monkeypatch.delenv("TUNELAB_API_KEY", raising=False)
    # Nothing in the test suite may reach a model hub.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return home


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def run_cli(*argv: str) -> int:
    from tunelab.cli.main import main

    return main([str(a) for a in argv])
