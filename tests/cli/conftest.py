"""Fixtures for the CLI tests of evaluate/compare/complete: small fine-tuned models in the test's
own store (a copy of the ones the `tiny_models` factory trains once per session)."""

import pytest


@pytest.fixture
def models(tiny_models, tunelab_home):
    """The trained tiny models, copied into this test's TUNELAB_HOME."""
    return tiny_models.install_trained(tunelab_home)


@pytest.fixture
def home(models, monkeypatch, tmp_path):
    """Run the CLI in an empty folder, on the store holding the models."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
