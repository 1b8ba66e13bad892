"""Shared fixtures. Every test gets its own TUNELAB_HOME so nothing touches the user's store.

- `tiny_models` (session): the one factory of tiny random-weight models (tests/helpers/tiny_models.py):
  base encoder/decoder folders, untrained fine-tuned folders to register in a store, and models
  trained by real tiny jobs, copied into a test's TUNELAB_HOME on request.
- `fake_predictors`: weightless predictors (tests/helpers/fake_predictor.py) for route and CLI
  tests; `tunelab.inference.predictor.load_predictor` answers with them while the fixture is used.

Tiers: tests marked `slow` start processes (workers, model processes, servers, `tunelab serve`),
train or load the packaged models, or run the README; `make test-fast` runs the rest
(`-m "not slow"`: tiny models still train in-process there), `make test` runs everything.
"""

from __future__ import annotations

import gc
import importlib
import os
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session):
    """Two speed-ups for a small, shared machine:

    - torch runs on one thread in the test process (TUNELAB_TEST_THREADS to change it): the tiny
      models gain nothing from more, and when other processes keep the cores busy, OpenMP threads
      waiting for each other made the engine tests ten times slower (6.5 min instead of 34 s).
    - The heavy libraries are imported once and their objects moved out of the garbage collector's
      sight: every app shutdown unloads its models with gc.collect(), which otherwise walks torch's
      and transformers' million objects (half a second each time).
    """
    for name in ("torch", "transformers", "transformers.models.bert.modeling_bert",
                 "transformers.models.llama.modeling_llama", "fastapi", "openai", "pandas", "sklearn.linear_model",
                 "matplotlib.pyplot"):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - only a speed-up; the tests import what they need themselves
            pass
    try:
        import torch

        torch.set_num_threads(int(os.environ.get("TUNELAB_TEST_THREADS") or 1))
    except ImportError:
        pass
    gc.collect()
    gc.freeze()


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


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random-weight models, built once per session (see TinyModels)."""
    from tests.helpers.tiny_models import TinyModels

    return TinyModels(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture
def fake_predictors(tmp_path, monkeypatch):
    """Register fake models with `fake_predictors.register(store, "classifier", labels=[...])`; the
    CLI and `evaluate` load them through the patched `load_predictor`, and a server built with
    `create_app(store, loader=fake_predictors.loader)` serves them. Any other model id is loaded
    by the real `load_predictor`."""
    from tests.helpers.fake_predictor import FakePredictors
    from tunelab.inference import predictor

    fakes = FakePredictors(tmp_path / "fake-models", fallback=predictor.load_predictor)
    monkeypatch.setattr("tunelab.inference.predictor.load_predictor", fakes.load)
    return fakes


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def postgres_url(monkeypatch) -> str:
    """A fresh PostgreSQL database for this test (dropped afterwards), also set as
    TUNELAB_DATABASE_URL for the test and the processes it starts; the test is skipped, with the
    reason, when no PostgreSQL server answers (tests/helpers/postgres.py)."""
    from tests.helpers.postgres import fresh_database

    with fresh_database() as url:
        monkeypatch.setenv("TUNELAB_DATABASE_URL", url)
        yield url


def run_cli(*argv: str) -> int:
    from tunelab.cli.main import main

    return main([str(a) for a in argv])
