"""Today's OpenAI model names and fine-tuned ids through the official client (issue 14): names map
to local models with a one-line notice; the current endpoint names models `ft:<base>:<org>:<suffix>:<id>`,
and those ids work everywhere a model id does."""

from __future__ import annotations

import os
import re

import openai
import pytest

from tests.server.conftest import PROMPT
from tunelab.training.runner import run_job


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)


@pytest.fixture
def train_id(client, training_files) -> str:
    return client.files.create(file=open(training_files[0], "rb"), purpose="fine-tune").id


@pytest.mark.parametrize("name,base", [("gpt-4o-mini-2024-07-18", "smollm2-135m"), ("gpt-3.5-turbo-0125", "smollm2-135m"),
                                       ("gpt-4.1-nano", "smollm2-135m"), ("davinci-002", "smollm2-135m"),
                                       ("babbage-002", "minilm-l6")])
def test_todays_names_are_accepted_with_the_alias_notice(client, train_id, name, base):
    job = client.fine_tuning.jobs.create(model=name, training_file=train_id)  # classification data
    assert job.model == name and job.base_model == base and job.status == "queued"
    assert job.notices[0] == f"Note: '{name}' is an alias; it maps to the local model {base}."
    assert client.models.retrieve(name).id == name


def test_suffix_is_normalised_not_refused(client, store, train_id, tiny_models):
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train_id,
                                         suffix="A Very Long Suffix, With Punctuation! " * 3)
    expected = "a-very-long-suffix-with-punctuation-a-very-long-suffix-with-punc"  # 64 characters
    assert job.notices[0].startswith(f"Suffix normalised to '{expected}'"), job.notices
    assert store.get_job(job.id).suffix == expected
    with pytest.raises(openai.BadRequestError) as excinfo:
        client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train_id, suffix="?!")
    assert excinfo.value.param == "suffix"


@pytest.mark.slow  # seconds of waiting or training: kept out of the fast tier
def test_current_ids_resolve_everywhere(client, store, train_id, tiny_models):
    job = client.fine_tuning.jobs.create(model=str(tiny_models.encoder), training_file=train_id,
                                         hyperparameters={"n_epochs": 1})
    run_job(store, store.claim_next_job(os.getpid()))
    model = client.fine_tuning.jobs.retrieve(job.id).fine_tuned_model
    assert re.fullmatch(r"ft:enc:personal::[A-Za-z0-9]{8}", model), model
    assert model in [m.id for m in client.models.list()]
    assert client.completions.create(model=model, prompt=PROMPT, max_tokens=1, logprobs=5).choices[0].logprobs
    # continued training from an ft: id keeps the base named in it
    child_job = client.fine_tuning.jobs.create(model=model, training_file=train_id, hyperparameters={"n_epochs": 1})
    run_job(store, store.claim_next_job(os.getpid()))
    child = client.fine_tuning.jobs.retrieve(child_job.id).fine_tuned_model
    assert re.fullmatch(r"ft:enc:personal::[A-Za-z0-9]{8}", child) and child != model
    assert store.find_model(child).parent_id == model
    # the legacy endpoint keeps legacy ids, from an ft: parent too
    legacy = client.post("/fine-tunes", cast_to=object, body={"training_file": train_id, "model": model, "n_epochs": 1})
    assert legacy["model"] == model
    run_job(store, store.claim_next_job(os.getpid()))
    grandchild = client.get(f"/fine-tunes/{legacy['id']}", cast_to=object)["fine_tuned_model"]
    assert re.fullmatch(r"enc:ft-personal-\d{4}(-\d{2}){5}", grandchild), grandchild
    assert client.models.delete(grandchild).deleted and client.models.delete(child).deleted
    assert client.models.delete(model).deleted
