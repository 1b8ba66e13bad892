"""Fixtures for the CLI tests of evaluate/compare/complete: a store with small fine-tuned models."""

import pytest

from tests.evaluation.test_report import shared_models


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return shared_models(tmp_path_factory)


@pytest.fixture
def home(models, monkeypatch, tmp_path):
    """Point the CLI at the store holding the shared models, and run in an empty folder."""
    monkeypatch.setenv("TUNELAB_HOME", str(models.home))
    monkeypatch.chdir(tmp_path)
    return tmp_path
