"""The classifier head that reads the [CLS] token and the mean of the token vectors (pooling=auto on a
BERT encoder): padding does not change its answer, it saves and loads as itself, a job records it, a
continued model keeps it, and pooling=cls still gives Hugging Face's own head."""

from __future__ import annotations

import os

import pytest
import torch

from tests.helpers.tiny_models import write_classification_jsonl
from tunelab.errors import InvalidInputError
from tunelab.models.heads import BertClsMeanForSequenceClassification, resolve_pooling
from tunelab.models.loading import load_fine_tuned, load_tokenizer, read_meta
from tunelab.store import Store
from tunelab.training.config import Hyperparameters
from tunelab.training.planning import JobRequest, create_job
from tunelab.training.runner import run_job

LABELS = ["1", "2", "3", "4", "5"]


def _head(encoder):
    torch.manual_seed(0)
    return BertClsMeanForSequenceClassification.from_pretrained(
        str(encoder), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={l: i for i, l in enumerate(LABELS)}).eval()


def test_padding_does_not_change_the_logits(tiny_models):
    model, tok = _head(tiny_models.encoder), load_tokenizer(tiny_models.encoder)
    short, long = "great fabric", "the dress was not very good it fits small and the color is poor"
    alone = tok([short], return_tensors="pt")
    padded = tok([short, long], return_tensors="pt", padding=True)
    with torch.no_grad():
        a = model(**alone).logits[0]
        b = model(**padded).logits[0]
    assert padded["attention_mask"][0].sum() < padded["attention_mask"].shape[1]  # the short one was padded
    assert torch.allclose(a, b, atol=1e-5)


def test_the_head_sees_the_mean_not_only_the_first_token(tiny_models):
    model, tok = _head(tiny_models.encoder), load_tokenizer(tiny_models.encoder)
    with torch.no_grad():
        model.classifier.weight[:, : model.config.hidden_size] = 0  # silence the [CLS] half
        one = model(**tok(["great good love"], return_tensors="pt")).logits
        two = model(**tok(["great awful hate"], return_tensors="pt")).logits
    assert not torch.allclose(one, two)


def test_auto_resolves_by_encoder_family(tiny_models):
    from transformers import AutoConfig

    assert resolve_pooling("auto", AutoConfig.from_pretrained(str(tiny_models.encoder))) == "cls+mean"
    assert resolve_pooling("auto", AutoConfig.from_pretrained(str(tiny_models.decoder))) == "cls"
    assert resolve_pooling("cls", AutoConfig.from_pretrained(str(tiny_models.encoder))) == "cls"


def test_unknown_pooling_is_a_clear_error():
    with pytest.raises(InvalidInputError) as err:
        Hyperparameters(pooling="max")
    assert "pooling must be one of auto, cls, cls+mean" in str(err.value.problems)
    assert Hyperparameters.from_dict({"pooling": "auto"}).pooling == "auto"


def _run(store, train, model, **hp):
    create_job(store, JobRequest(str(train), model, None, {"n_epochs": 1, "batch_size": 8, **hp}))
    return run_job(store, store.claim_next_job(os.getpid()))


def _train(store, train, model, **hp):
    job = _run(store, train, model, **hp)
    assert job.status == "succeeded", job.error
    return job


@pytest.mark.slow
def test_a_job_records_the_head_and_a_continued_model_keeps_it(tiny_models, tmp_path):
    store = Store()
    train = write_classification_jsonl(tmp_path / "train.jsonl", 32)
    job = _train(store, train, str(tiny_models.encoder))
    folder = store.get_model(job.fine_tuned_model).path
    assert read_meta(folder).pooling == "cls+mean"
    model, _, _ = load_fine_tuned(folder)
    assert isinstance(model, BertClsMeanForSequenceClassification)
    assert any("Classifier head: a linear layer on the [CLS] token and the mean" in e.message
               for e in store.list_events(job.id))

    child = _train(store, train, job.fine_tuned_model)
    assert read_meta(store.get_model(child.fine_tuned_model).path).pooling == "cls+mean"
    # another head is refused when the job is created, not when the worker loads the parent
    with pytest.raises(InvalidInputError, match="keeps its head"):
        _run(store, train, job.fine_tuned_model, pooling="cls")


@pytest.mark.slow
def test_pooling_cls_is_hugging_faces_own_head(tiny_models, tmp_path):
    from transformers import AutoModelForSequenceClassification

    store = Store()
    job = _train(store, write_classification_jsonl(tmp_path / "train.jsonl", 32), str(tiny_models.encoder),
                 pooling="cls")
    folder = store.get_model(job.fine_tuned_model).path
    assert read_meta(folder).pooling == "cls"
    # Loadable by plain transformers code, e.g. a `pipeline`.
    assert type(AutoModelForSequenceClassification.from_pretrained(str(folder))).__name__ == "BertForSequenceClassification"


@pytest.mark.slow
def test_a_causal_classifier_rejects_an_encoder_head(tiny_models, tmp_path):
    failed = _run(Store(), write_classification_jsonl(tmp_path / "train.jsonl", 32), str(tiny_models.decoder),
                  method="classifier", pooling="cls+mean")
    assert failed.status == "failed" and "needs an encoder" in failed.error["message"]


@pytest.mark.slow
def test_lora_on_the_head_trains_and_loads(tiny_models, tmp_path):
    store = Store()
    job = _train(store, write_classification_jsonl(tmp_path / "train.jsonl", 32), str(tiny_models.encoder),
                 lora=True, lora_r=4)
    folder = store.get_model(job.fine_tuned_model).path
    meta = read_meta(folder)
    assert meta.lora and meta.pooling == "cls+mean"
    model, tok, _ = load_fine_tuned(folder)
    with torch.no_grad():
        logits = model(**tok(["great fabric"], return_tensors="pt")).logits
    assert logits.shape == (1, 5)


@pytest.mark.parametrize("damage", ["no_weights", "cut_weights", "bad_meta"])
def test_a_damaged_model_folder_is_named_not_a_traceback(tiny_models, tmp_path, damage):
    """Weights deleted by hand or cut short by a full disk, tunelab.json cut short: a
    ModelUnavailableError (exit 3, a 404 from the server) naming the folder and the way out."""
    import shutil

    from tunelab.errors import ModelUnavailableError

    folder = tmp_path / "model"
    shutil.copytree(tiny_models.finetuned()["classifier"], folder)
    weights = folder / "model.safetensors"
    if damage == "no_weights":
        weights.unlink()
    elif damage == "cut_weights":
        weights.write_bytes(weights.read_bytes()[:1000])
    else:
        (folder / "tunelab.json").write_text('{"method": "classif')
    with pytest.raises(ModelUnavailableError, match=f"model folder {folder} is damaged") as info:
        load_fine_tuned(folder)
    assert "models delete" in info.value.render()
