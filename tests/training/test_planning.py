"""Planning a job (`create_job`) without training it: method choice, model kind, aliases,
continuation, and every problem reported at once with nothing queued."""

from __future__ import annotations

import json

import pytest

from tests.helpers.tiny_models import write_classification_jsonl
from tunelab.errors import InvalidInputError
from tunelab.store import Store
from tunelab.training.config import ClassificationOptions
from tunelab.training.planning import JobRequest, create_job


@pytest.fixture
def store(tunelab_home) -> Store:
    return Store()


@pytest.fixture
def free_form(tmp_path):
    path = tmp_path / "gen.jsonl"
    with open(path, "w") as fh:
        for i in range(40):
            fh.write(json.dumps({"prompt": f"great dress {i % 7}\n\n###\n\n",
                                 "completion": f" the fabric is fine {i}\n"}) + "\n")
    return path


def plan(store, train, model, hp=None, **kwargs):
    return create_job(store, JobRequest(str(train), model, hyperparameters=hp, **kwargs))


def test_classification_data_on_an_encoder_plans_a_classifier(store, tiny_models):
    job, notices = plan(store, tiny_models.train, str(tiny_models.encoder), {"n_epochs": 2},
                        validation_file=str(tiny_models.valid), classification=ClassificationOptions(True, 5))
    assert job.status == "queued" and job.method == "classifier"
    assert job.options["kind"] == "encoder" and job.options["labels"] == [" 1", " 2", " 3", " 4", " 5"]
    assert job.options["cumulative_epochs"] == 2 and job.options["n_train"] == 120 and job.options["n_valid"] == 30
    assert job.base_model == str(tiny_models.encoder.resolve())
    assert any(n.startswith("Method: classifier (auto: classification data") for n in notices)
    assert sorted(f.n_rows for f in store.list_files()) == [30, 120]  # both paths uploaded
    assert [e.message for e in store.list_events(job.id)][-1].startswith("Job enqueued")


def test_free_form_data_on_a_decoder_plans_lm(store, tiny_models, free_form):
    job, notices = plan(store, free_form, str(tiny_models.decoder))
    assert job.method == "lm" and job.options["kind"] == "causal"
    assert job.options["labels"] is None and job.options["classification"] is False
    assert any("free-form completions" in n for n in notices)


def test_lm_method_on_a_local_causal_folder(store, tiny_models):
    job, _ = plan(store, tiny_models.train, str(tiny_models.decoder), {"method": "lm"})
    assert job.method == "lm" and job.options["kind"] == "causal"
    assert job.options["labels"] == [" 1", " 2", " 3", " 4", " 5"]  # lm on classification data keeps its labels


def test_lm_method_on_a_causal_hub_id_plans_as_causal(store, tiny_models):
    """No download while planning: the hub id's architecture is unknown offline, and `--method lm`
    says it is causal. It must not be refused as "an encoder"."""
    job, _ = plan(store, tiny_models.train, "HuggingFaceTB/SmolLM2-135M", {"method": "lm"})
    assert job.method == "lm" and job.options["kind"] == "causal"
    assert job.base_model == "HuggingFaceTB/SmolLM2-135M"
    assert job.options["id_prefix"] == "SmolLM2-135M"


def test_lm_method_on_an_encoder_is_refused(store, tiny_models):
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, tiny_models.train, str(tiny_models.encoder), {"method": "lm"})
    assert any("is an encoder" in p for p in excinfo.value.problems)
    assert store.list_jobs() == []


def test_free_form_data_on_an_encoder_is_refused(store, tiny_models, free_form):
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, free_form, str(tiny_models.encoder))
    assert any("can only learn classification" in p and "smollm2-135m" in p for p in excinfo.value.problems)
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, free_form, str(tiny_models.decoder), {"method": "classifier"})
    assert any("method classifier needs classification data" in p for p in excinfo.value.problems)
    assert store.list_jobs() == []


def test_ada_alias_plans_on_minilm_with_a_notice(store, tiny_models):
    job, notices = plan(store, tiny_models.train, "ada")
    assert notices[0] == "Note: 'ada' is an alias; it maps to the local model minilm-l6."
    assert job.model == "ada" and job.base_model == "minilm-l6" and job.method == "classifier"
    assert job.options["id_prefix"] == "ada" and job.options["kind"] == "encoder"
    assert job.options["base_learning_rate"] == 2e-4


def test_continuing_a_fine_tuned_model(store, tiny_models):
    parent = tiny_models.register(store, "classifier")
    job, _ = plan(store, tiny_models.train, parent, {"n_epochs": 3})
    assert job.parent_model == parent and job.method == "classifier"  # "auto" takes the parent's method
    assert job.options["cumulative_epochs"] == 1 + 3
    assert job.options["base_learning_rate"] == 1e-4  # the parent's base rate, not the default
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, tiny_models.train, parent, {"method": "lm"})
    assert any("trained with method classifier" in p for p in excinfo.value.problems)
    # Another head is refused here, with the other problems, not by the job once queued (QA).
    head = store.get_model(parent).meta.get("pooling", "cls")
    other = "cls" if head != "cls" else "cls+mean"
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, tiny_models.train, parent, {"pooling": other})
    assert any(f"keeps its head (got pooling={other})" in p for p in excinfo.value.problems)
    assert plan(store, tiny_models.train, parent, {"pooling": head})[0].parent_model == parent


def test_a_classifier_continues_on_data_with_some_of_its_labels(store, tiny_models, tmp_path):
    """Corrections exported from feedback rarely cover every class: the continued model keeps the
    parent's labels (and head); a label the parent does not have is refused before anything runs."""
    parent = tiny_models.register(store, "classifier")
    labels = store.get_model(parent).labels
    some = write_classification_jsonl(tmp_path / "some.jsonl", 20, labels=("2", "4"))
    job, _ = plan(store, some, parent, {"n_epochs": 1}, validation_file=str(tiny_models.valid),
                  classification=ClassificationOptions(True, 5))
    assert job.options["labels"] == labels and len(labels) == 5
    job, _ = plan(store, some, parent, {"n_epochs": 1}, validation_file=str(some),
                  classification=ClassificationOptions(True, 2))
    assert job.options["labels"] == labels
    foreign = write_classification_jsonl(tmp_path / "foreign.jsonl", 20, labels=("2", "6"))
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, foreign, parent, {"n_epochs": 1})
    assert any("label(s) it does not have: ' 6'" in p for p in excinfo.value.problems)
    assert len(store.list_jobs()) == 2


def test_every_problem_is_reported_at_once(store, tmp_path):
    with pytest.raises(InvalidInputError) as excinfo:
        create_job(store, JobRequest(str(tmp_path / "missing.jsonl"), "no-such-model",
                                     hyperparameters={"n_epochs": 0},
                                     classification=ClassificationOptions(True, 5), suffix="!!!"))
    text = "\n".join(excinfo.value.problems)
    for needle in ("n_epochs", "missing.jsonl", "need a validation file", "suffix", "Unknown model 'no-such-model'"):
        assert needle in text, needle
    assert store.list_jobs() == [] and store.list_files() == []



def test_a_raw_review_file_is_refused_with_the_command_that_builds_one(store, tmp_path):
    """fine_tunes.create -t <Amazon reviews as released> said what was wrong but dropped the
    reader's hint, the `datasets build` command; an invalid file keeps its prepare_data hint too."""
    raw = tmp_path / "reviews.jsonl"
    raw.write_text("".join(json.dumps({"review_id": f"r{i}", "stars": 1 + i % 5, "review_body": "fine",
                                       "review_title": "", "product_category": "home"}) + "\n" for i in range(20)))
    with pytest.raises(InvalidInputError) as excinfo:
        create_job(store, JobRequest(str(raw), "ada"))
    text = "\n".join(excinfo.value.problems)
    assert "not a prompt/completion file" in text and f"tunelab datasets build {raw} --preset amazon-stars" in text
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n')
    with pytest.raises(InvalidInputError) as excinfo:
        create_job(store, JobRequest(str(bad), "ada"))
    assert f"tunelab tools fine_tunes.prepare_data -f {bad}" in "\n".join(excinfo.value.problems)

def test_class_count_and_positive_class_are_checked_against_the_data(store, tiny_models, tmp_path):
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, tiny_models.train, str(tiny_models.encoder), validation_file=str(tiny_models.valid),
             classification=ClassificationOptions(True, 3))
    assert any("does not match the training data, which has 5" in p for p in excinfo.value.problems)
    binary = write_classification_jsonl(tmp_path / "yn.jsonl", 20, labels=("yes", "no"))
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, binary, str(tiny_models.encoder), validation_file=str(binary),
             classification=ClassificationOptions(True, None, "maybe"))
    assert any("'maybe' is not a completion" in p for p in excinfo.value.problems)
    assert store.list_files() == []  # a refused request leaves none of the files it uploaded
    unseen = write_classification_jsonl(tmp_path / "unseen.jsonl", 10, labels=("yes", "no", "other"))
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, binary, str(tiny_models.encoder), validation_file=str(unseen),
             classification=ClassificationOptions(True, None))
    assert any("never occur in the training file" in p for p in excinfo.value.problems)
    assert store.list_files() == [] and not any(store.files_dir.glob("*"))
    # A file given by id was the user's upload: a refused request keeps it.
    kept = store.add_file(binary, purpose="fine-tune", n_rows=20).id
    with pytest.raises(InvalidInputError):
        plan(store, kept, str(tiny_models.encoder), validation_file=str(unseen),
             classification=ClassificationOptions(True, None))
    assert [f.id for f in store.list_files()] == [kept]


def test_chat_files_plan_like_prompt_completion_ones(store, tiny_models, tmp_path):
    from tests.helpers.tiny_models import write_chat_jsonl

    chat = write_chat_jsonl(tmp_path / "chat.jsonl", 40)
    job, notices = plan(store, chat, "gpt-4o-mini-2024-07-18", id_style="current", suffix="Stars")
    # the last assistant replies are the labels; a chat name maps to the instruct decoder
    assert job.method == "classifier" and job.options["labels"] == ["1", "2", "3", "4", "5"]
    assert job.base_model == "smollm2-135m" and job.options["model_id_style"] == "current"
    assert notices[0] == "Note: 'gpt-4o-mini-2024-07-18' is an alias; it maps to the local model smollm2-135m."
    assert job.suffix == "stars"

    long_rows = tmp_path / "long.jsonl"
    long_rows.write_text(chat.read_text() + json.dumps({"messages": [
        {"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "3"}]}) + "\n")
    _, notices = plan(store, long_rows, str(tiny_models.encoder), {"max_length": 64})
    assert any(n.startswith("1 chat example(s) look longer than max_length=64 tokens") and "line(s) 41" in n
               for n in notices), notices

    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, chat, str(tiny_models.encoder), validation_file=str(tiny_models.valid))
    assert ("the training file is chat (messages) but the validation file is prompt/completion; give both in the "
            "same format") in excinfo.value.problems


@pytest.mark.slow  # trains a tiny model: kept out of the fast tier
def test_a_continued_classifier_trained_on_some_labels_keeps_all_of_them(store, tiny_models, tmp_path):
    import os

    from tunelab.training.runner import run_job

    parent = tiny_models.register(store, "classifier")
    labels = store.get_model(parent).labels
    some = write_classification_jsonl(tmp_path / "some.jsonl", 20, labels=("2", "4"))
    plan(store, some, parent, {"n_epochs": 1})
    job = run_job(store, store.claim_next_job(os.getpid()))
    assert job.status == "succeeded", job.error
    assert store.find_model(job.fine_tuned_model).labels == labels


def test_a_validation_file_made_of_training_prompts_gets_a_notice(store, tiny_models):
    _, notices = plan(store, tiny_models.train, str(tiny_models.encoder), validation_file=str(tiny_models.train))
    (overlap,) = [n for n in notices if "also in the training file" in n]
    assert "(100%)" in overlap and "tunelab datasets build" in overlap
    _, notices = plan(store, tiny_models.train, str(tiny_models.encoder), validation_file=str(tiny_models.valid))
    assert not [n for n in notices if "also in the training file" in n]


def test_labels_written_with_and_without_their_leading_space_are_refused(store, tmp_path):
    """" 4" and "4" in one training file trained as two classes each (10 classes for 5 stars, loss
    ln 10) without a word; now the job is refused, naming the labels, the lines and the fix."""
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text("".join(json.dumps({"prompt": f"review {i}\n\n###\n\n",
                                         "completion": (" " if i % 3 else "") + str(1 + i % 5)}) + "\n"
                             for i in range(60)))
    with pytest.raises(InvalidInputError) as excinfo:
        create_job(store, JobRequest(str(mixed), "ada"))
    text = "\n".join(excinfo.value.problems)
    assert "' 1' / '1'" in text and "' 5' / '5'" in text and "differ only in whitespace" in text
    assert "on 20 line(s): 1, 4, 7, 10, 13, …" in text
    assert f"tunelab tools fine_tunes.prepare_data -f {mixed}" in text
    assert store.list_jobs() == [] and store.list_files() == []


def test_data_with_a_single_distinct_completion_is_not_trained_as_a_one_label_classifier(store, tiny_models,
                                                                                          tmp_path):
    """Multi-turn chat rows whose last learnt reply is always the same (or prompt/completion rows
    with one completion) passed the "fewer than a third" rule and trained a classifier over one
    label: loss 0 from the first step, the same answer for every input. Now refused, naming the
    completion; the lm method asked for by name trains the replies as free text."""
    chat = tmp_path / "multi.jsonl"
    chat.write_text("".join(json.dumps({"messages": [
        {"role": "user", "content": f"good dress {i}"}, {"role": "assistant", "content": "fine", "weight": 0},
        {"role": "user", "content": "again"}, {"role": "assistant", "content": "great"}]}) + "\n" for i in range(30)))
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, chat, str(tiny_models.decoder))
    (problem,) = excinfo.value.problems
    assert "every training example has the same completion ('great')" in problem
    assert "last assistant message of weight 1" in problem and '{"method": "lm"}' in problem
    constant = tmp_path / "constant.jsonl"
    constant.write_text("".join(json.dumps({"prompt": f"review {i}\n\n###\n\n", "completion": " 4"}) + "\n"
                                for i in range(30)))
    with pytest.raises(InvalidInputError) as excinfo:
        plan(store, constant, str(tiny_models.encoder), {"method": "classifier"})
    assert any("same completion (' 4')" in p for p in excinfo.value.problems)
    assert store.list_jobs() == []

    job, _ = plan(store, chat, str(tiny_models.decoder), {"method": "lm"})
    assert job.method == "lm" and job.options["labels"] is None and job.options["classification"] is False
    # a classifier continued on corrections that are all one of its labels is still fine
    parent = tiny_models.register(store, "classifier")
    assert plan(store, constant, parent, {"n_epochs": 1})[0].options["labels"] == store.get_model(parent).labels


CHINESE = ["质量很好，物流也很快，非常满意！", "用了两天就坏了，太失望了。", "一般般吧，价格还算合理。",
           "非常差，和描述完全不一样。", "孩子很喜欢，下次还会再来买。"]


def test_text_the_tokenizer_reads_as_unk_gets_a_notice_naming_the_share(store, tiny_models, tmp_path):
    # Chinese reviews on an English vocabulary trained without a word of warning before.
    path = tmp_path / "zh.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"{CHINESE[i % 5]} great\n\n###\n\n", "completion": f" {i % 5 + 1}"},
                                       ensure_ascii=False) + "\n" for i in range(40)), encoding="utf-8")
    job, notices = plan(store, path, str(tiny_models.encoder))
    [notice] = [n for n in notices if "[UNK]" in n]
    assert "reads 33% of the tokens of the training prompts as [UNK]" in notice  # of the review, great and ###
    assert "smollm2-135m" in notice and "multilingual" in notice
    assert notice in [e.message for e in store.list_events(job.id)]


def test_text_the_tokenizer_knows_gets_no_unk_notice(store, tiny_models):
    _, notices = plan(store, tiny_models.train, str(tiny_models.encoder))
    assert not [n for n in notices if "[UNK]" in n]


def test_max_length_is_lowered_to_what_a_local_model_reads(store, tiny_models, tmp_path):
    # The tiny encoder has 128 positions: with the default max_length of 256 its job failed at the
    # first longer review, mid-training, with a tensor-size RuntimeError.
    job, notices = plan(store, tiny_models.train, str(tiny_models.encoder))
    assert job.hyperparams["max_length"] == 128
    [notice] = [n for n in notices if n.startswith("max_length lowered")]
    assert "from 256 to 128" in notice and "max_position_embeddings" in notice
    assert notice in [e.message for e in store.list_events(job.id)]
    job, notices = plan(store, tiny_models.train, str(tiny_models.encoder), {"max_length": 64})
    assert job.hyperparams["max_length"] == 64 and not [n for n in notices if n.startswith("max_length")]


def test_position_limit_reads_the_config(tmp_path):
    from tunelab.models.positions import position_limit

    def limit(**config):
        (tmp_path / "config.json").write_text(json.dumps(config))
        return position_limit(tmp_path)

    assert limit(model_type="bert", max_position_embeddings=512) == 512
    assert limit(model_type="roberta", max_position_embeddings=514, pad_token_id=1) == 512
    assert limit(model_type="gpt2", n_positions=1024) == 1024
    assert limit(model_type="bert", max_position_embeddings=130) == 128  # batches pad to multiples of 8
    assert limit(model_type="t5") is None
    (tmp_path / "config.json").write_text("{not json")
    assert position_limit(tmp_path) is None and position_limit(tmp_path / "missing") is None
