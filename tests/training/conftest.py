import pytest

from tests.helpers.tiny_models import build_tiny_decoder, build_tiny_encoder, write_classification_jsonl


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    build_tiny_encoder(root / "enc")
    build_tiny_decoder(root / "dec")
    write_classification_jsonl(root / "train.jsonl", 120, seed=0)
    write_classification_jsonl(root / "valid.jsonl", 30, seed=1)
    return root
