"""`-m` resolution: packaged names, OpenAI aliases, fine-tuned ids from the store, local Hugging Face
folders, hub ids, and unknown names. Nothing here loads weights or reaches a hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab.errors import InvalidInputError, ModelUnavailableError
from tunelab.models.registry import (
    ALIASES, BASE_MODELS, CAUSAL, ENCODER, kind_of_config, list_base_models, resolve_model,
)
from tunelab.store import Store


@pytest.fixture
def store(tunelab_home) -> Store:
    return Store()


# -- packaged base models -------------------------------------------------------------------------

@pytest.mark.parametrize("name,kind,lr", [("minilm-l6", ENCODER, 2e-4), ("smollm2-135m", CAUSAL, 5e-5),
                                          ("MiniLM-L6", ENCODER, 2e-4)])
def test_packaged_names(name, kind, lr):
    resolved = resolve_model(name, materialize=False)
    assert resolved.base_model == name.lower() and resolved.id_prefix == name.lower()
    assert resolved.kind == kind
    assert resolved.base_learning_rate == lr and resolved.default_batch_size == 16
    assert resolved.parent is None and resolved.notice is None


def test_packaged_encoder_materializes_to_its_installed_folder():
    resolved = resolve_model("minilm-l6")
    folder = Path(resolved.path)
    assert (folder / "config.json").is_file()
    assert kind_of_config(folder / "config.json") == ENCODER == BASE_MODELS["minilm-l6"].kind


def test_list_base_models_has_both_models_and_every_alias():
    rows = {r["name"]: r for r in list_base_models()}
    assert rows["minilm-l6"]["kind"] == ENCODER and rows["smollm2-135m"]["kind"] == CAUSAL
    assert rows["minilm-l6"]["status"] in ("installed", "missing")
    for alias in ALIASES:
        assert rows[alias]["kind"] == "alias"
    assert "minilm-l6 (classification) / smollm2-135m (completions)" in rows["ada"]["description"]


# -- aliases --------------------------------------------------------------------------------------

def test_ada_is_minilm_for_classification():
    resolved = resolve_model("ada", classification=True, materialize=False)
    assert resolved.base_model == "minilm-l6" and resolved.kind == ENCODER
    assert resolved.id_prefix == "ada"  # fine-tuned ids read ada:ft-…
    assert "'ada' is an alias" in resolved.notice and "minilm-l6" in resolved.notice


def test_ada_is_smollm2_for_completions():
    resolved = resolve_model("ada", classification=False, materialize=False)
    assert resolved.base_model == "smollm2-135m" and resolved.kind == CAUSAL
    assert resolved.id_prefix == "ada"
    assert "smollm2-135m" in resolved.notice


@pytest.mark.parametrize("alias", ["babbage", "curie", "Davinci"])
def test_generation_aliases_are_smollm2_either_way(alias):
    for classification in (True, False):
        resolved = resolve_model(alias, classification=classification, materialize=False)
        assert resolved.base_model == "smollm2-135m" and resolved.id_prefix == alias.lower()
        assert resolved.notice and alias.lower() in resolved.notice


@pytest.mark.parametrize("name,for_classes,for_text", [
    ("babbage-002", "minilm-l6", "smollm2-135m"),  # the replacement of ada and babbage: ada's mapping
    ("davinci-002", "smollm2-135m", "smollm2-135m"),
    ("gpt-3.5-turbo", "smollm2-135m", "smollm2-135m"),
    ("gpt-3.5-turbo-0125", "smollm2-135m", "smollm2-135m"),
    ("gpt-4o-mini-2024-07-18", "smollm2-135m", "smollm2-135m"),
    ("GPT-4o-mini", "smollm2-135m", "smollm2-135m"),
    ("gpt-4.1-nano-2025-04-14", "smollm2-135m", "smollm2-135m"),
    ("gpt-4.1-2025-04-14", "smollm2-135m", "smollm2-135m"),
])
def test_todays_openai_names_map_to_local_models_with_one_notice(name, for_classes, for_text):
    for classification, target in ((True, for_classes), (False, for_text)):
        resolved = resolve_model(name, classification=classification, materialize=False)
        assert resolved.base_model == target and resolved.id_prefix == name.lower()
        assert resolved.notice == f"Note: '{name.lower()}' is an alias; it maps to the local model {target}."


@pytest.mark.parametrize("name", ["gpt-5", "gpt-4o-mini-tts", "gpt-3.5-turbo-instruct-x", "gpt-4.1x"])
def test_other_gpt_names_are_unknown(name):
    with pytest.raises(InvalidInputError, match="Unknown model"):
        resolve_model(name, materialize=False)


# -- fine-tuned ids -------------------------------------------------------------------------------

def test_current_style_ids_resolve_and_continue_under_their_base(store, tiny_models, tmp_path):
    import shutil

    from tunelab.store.ids import CURRENT, MODEL_ID, model_id_base

    folder = tiny_models.finetuned()["classifier"]
    copy = tmp_path / "build"
    shutil.copytree(folder, copy)
    meta = json.loads((folder / "tunelab.json").read_text())
    record = store.register_model(base_id="gpt-4o-mini", built_dir=copy, base_model=meta["base_model"],
                                  method="classifier", labels=meta["labels"], cumulative_epochs=1, suffix="stars",
                                  meta=meta, id_style=CURRENT)
    assert MODEL_ID.match(record.id) and record.id.startswith("ft:gpt-4o-mini:personal:stars:")
    resolved = resolve_model(record.id, store)
    assert resolved.parent.id == record.id and resolved.id_prefix == "gpt-4o-mini" == model_id_base(record.id)
    assert model_id_base("ada:ft-personal-2023-03-31-05-30-46") == "ada"


def test_fine_tuned_ids_come_from_the_store(store, tiny_models):
    clf = tiny_models.register(store, "classifier", suffix="clf")
    lm = tiny_models.register(store, "lm")
    resolved = resolve_model(clf, store)
    assert resolved.parent is not None and resolved.parent.id == clf
    assert resolved.kind == ENCODER and resolved.id_prefix == "enc"
    assert Path(resolved.path) == Path(store.get_model(clf).path)
    assert resolved.base_model == str(tiny_models.encoder)
    assert resolved.base_learning_rate == 1e-4 and resolved.default_batch_size == 8  # the parent's, not defaults
    causal = resolve_model(lm, store, classification=False)
    assert causal.kind == CAUSAL and causal.parent.method == "lm" and causal.id_prefix == "dec"


def test_fine_tuned_id_without_a_store_or_weights(store, tiny_models):
    model_id = tiny_models.register(store, "classifier")
    with pytest.raises(InvalidInputError, match="Unknown model"):
        resolve_model(model_id)  # no store given: not a name it knows
    import shutil

    shutil.rmtree(store.get_model(model_id).path)
    with pytest.raises(ModelUnavailableError, match="missing"):
        resolve_model(model_id, store)


def test_an_unregistered_fine_tuned_id_is_unknown(store):
    with pytest.raises(InvalidInputError) as excinfo:
        resolve_model("ada:ft-personal-2023-03-31-05-30-46", store)
    assert "ada:ft-personal-2023-03-31-05-30-46" in excinfo.value.message


# -- local folders --------------------------------------------------------------------------------

def test_local_encoder_and_decoder_folders(tiny_models):
    enc = resolve_model(str(tiny_models.encoder))
    assert enc.kind == ENCODER
    assert enc.base_model == str(tiny_models.encoder.resolve()) and Path(enc.path) == tiny_models.encoder.resolve()
    assert enc.id_prefix == tiny_models.encoder.name
    dec = resolve_model(str(tiny_models.decoder), classification=False, materialize=False)
    assert dec.kind == CAUSAL and dec.id_prefix == tiny_models.decoder.name and dec.notice is None


def test_a_folder_without_config_is_refused(tmp_path):
    (tmp_path / "weights").mkdir()
    with pytest.raises(InvalidInputError, match="no config.json"):
        resolve_model(str(tmp_path / "weights"))


@pytest.mark.parametrize("config,kind", [
    ({"architectures": ["BertModel"], "model_type": "bert"}, ENCODER),
    ({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, CAUSAL),
    ({"model_type": "qwen2"}, CAUSAL),
    ({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}, CAUSAL),
    ({"architectures": ["RobertaForSequenceClassification"], "model_type": "roberta"}, ENCODER),
])
def test_kind_of_config(tmp_path, config, kind):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert kind_of_config(path) == kind


# -- hub ids --------------------------------------------------------------------------------------

def test_hub_id_without_materializing_is_not_assumed_an_encoder():
    """Planning resolves with materialize=False (no download). A causal hub id must not come back as
    an encoder then, or `--method lm` on SmolLM2 from the hub is refused."""
    resolved = resolve_model("HuggingFaceTB/SmolLM2-135M", classification=False, materialize=False)
    assert resolved.kind != ENCODER
    assert resolved.base_model == "HuggingFaceTB/SmolLM2-135M" and str(resolved.path) == "HuggingFaceTB/SmolLM2-135M"
    assert resolved.id_prefix == "SmolLM2-135M"


def test_hub_id_offline_is_a_typed_error():
    with pytest.raises(ModelUnavailableError, match="HF_HUB_OFFLINE"):
        resolve_model("HuggingFaceTB/SmolLM2-135M")


# -- unknown names --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["gpt-5", "no-such-model", "./not/here", "/definitely/not/a/folder"])
def test_unknown_names_are_typed_errors_with_a_hint(name):
    with pytest.raises(InvalidInputError) as excinfo:
        resolve_model(name)
    assert f"Unknown model {name!r}" in excinfo.value.message
    assert "tunelab models list" in excinfo.value.hint
    assert "Traceback" not in excinfo.value.render()


def test_no_name_at_all():
    with pytest.raises(InvalidInputError, match="No model given"):
        resolve_model("")


def test_a_near_miss_names_the_model_meant(store, tiny_models):
    """`-m adda`, `-m minilm-l7`, a fine-tuned id with its last digit cut off: the error suggests the name."""
    model = tiny_models.register(store, "classifier")
    for typed, meant in [("adda", "ada"), ("minilm-l7", "minilm-l6"), (model[:-1], model)]:
        with pytest.raises(InvalidInputError) as excinfo:
            resolve_model(typed, store, materialize=False)
        assert f"Did you mean {meant!r}?" in excinfo.value.message, typed
    with pytest.raises(InvalidInputError) as excinfo:
        resolve_model("no-such-model", store, materialize=False)
    assert "Did you mean" not in excinfo.value.message


def test_a_job_id_given_as_a_model_says_what_became_of_its_model(store, tiny_models):
    """`evaluate -m ft-…` (the job, not its model) said only "does not exist": now it says the job's model,
    or that the job has not finished, or that it failed and why."""
    from tunelab.inference.predictor import load_predictor
    from tunelab.errors import NotFoundError
    from tunelab.store.records import FAILED, SUCCEEDED
    from tunelab.training.planning import JobRequest, create_job

    job, _ = create_job(store, JobRequest(str(tiny_models.train), str(tiny_models.encoder)))
    legacy = job.legacy_id
    with pytest.raises(NotFoundError) as excinfo:
        load_predictor(legacy, store)
    assert f"{legacy} is a fine-tuning job that has not finished (status: queued)" in excinfo.value.message
    assert f"tunelab api fine_tunes.follow -i {legacy}" in excinfo.value.message
    store.update_job(job.id, status=FAILED, error={"code": "error", "message": "out of memory"})
    with pytest.raises(InvalidInputError) as excinfo:
        resolve_model(legacy, store, materialize=False)
    assert f"{legacy} is a fine-tuning job that failed (out of memory), so it has no model" in excinfo.value.message
    model = tiny_models.register(store, "classifier")
    store.update_job(job.id, status=SUCCEEDED, fine_tuned_model=model, error=None)
    with pytest.raises(NotFoundError) as excinfo:
        load_predictor(job.id, store)
    assert f"the model it made is {model}." in excinfo.value.message


def test_a_model_folder_without_tokenizer_or_weights_is_refused_when_the_job_is_made(tmp_path, tiny_models):
    # Such a folder planned fine and failed in the worker with transformers' "Couldn't instantiate
    # the backend tokenizer".
    import shutil

    from tunelab.errors import InvalidInputError
    from tunelab.models.registry import resolve_model

    folder = tmp_path / "half"
    shutil.copytree(tiny_models.encoder, folder)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(InvalidInputError) as err:
        resolve_model(str(folder), materialize=False)
    assert "has a config.json but no tokenizer files (tokenizer.json" in err.value.message
    assert "weights" not in err.value.message
    assert "tokenizer.save_pretrained" in err.value.hint
    for weights in folder.glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(InvalidInputError, match="weights"):
        resolve_model(str(folder), materialize=False)
    assert resolve_model(str(tiny_models.encoder), materialize=False).path == tiny_models.encoder.resolve()
