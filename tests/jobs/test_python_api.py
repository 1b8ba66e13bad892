"""tunelab's Python API for notebooks, end to end on a tiny model: the README's block as a reader
runs it (with the tiny encoder in place of `ada`), then the rest of the API on the same store."""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
import warnings

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers.tiny_models import write_classification_jsonl
from tunelab.errors import ConflictError, InvalidInputError, JobFailedError, NotFoundError


def readme_python_block() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- readme-test:python-api:start -->(.*?)<!-- readme-test:python-api:end -->", text, re.S)
    assert section, "README has no readme-test:python-api section"
    (block,) = re.findall(r"```python\n(.*?)```", section.group(1), re.S)
    return block


@pytest.fixture
def reviews(tmp_path, monkeypatch):
    """The walkthrough's files, small, in the current folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reviews").mkdir()
    write_classification_jsonl(tmp_path / "reviews" / "train.jsonl", 60)
    write_classification_jsonl(tmp_path / "reviews" / "valid.jsonl", 20, seed=1)
    write_classification_jsonl(tmp_path / "reviews" / "test.jsonl", 25, seed=2)
    return tmp_path / "reviews"


@pytest.mark.slow  # a worker process trains a tiny model
def test_readme_block_then_the_whole_api(reviews, tiny_models, quick_worker, store):
    import tunelab

    block = readme_python_block()
    assert 'model="ada"' in block
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(block.replace('model="ada"', f"model={str(tiny_models.encoder)!r}"), "README.md", "exec"), {})
    printed = out.getvalue()
    assert "] Job succeeded." in printed  # wait() showed the job's events as they came
    assert re.search(r"^succeeded enc:ft-personal-", printed, re.M)
    assert "Predicted Star:" in printed and "majority baseline" in printed
    assert len(re.findall(r"^' \d': \d\.\d{4}$", printed, re.M)) == 5  # five labels with their probabilities

    (job,) = tunelab.list_jobs()
    assert tunelab.get_job(job.legacy_id).id == job.id and job.status == "succeeded"
    assert repr(job) == f"Job(id={job.id!r}, status='succeeded', fine_tuned_model={job.fine_tuned_model!r})"
    events = job.events()
    assert events[0]["message"].startswith("Created fine-tuning job") and events[-1]["message"] == "Job succeeded."
    results = job.results()
    assert list(results.columns[:2]) == ["step", "elapsed_tokens"] and results["classification/accuracy"].notna().any()
    info = job.to_dict()
    assert info["hyperparameters"]["n_epochs"] == 1 and info["final_metrics"] and info["training_method"] == "classifier"
    with pytest.raises(ConflictError):
        job.cancel()

    model = job.fine_tuned_model
    table = tunelab.compare([model], "reviews/test.jsonl", train_file="reviews/train.jsonl", progress=False)
    assert model in table["markdown"] and table["reports"][model]["n"] == 25
    report = tunelab.evaluate(model, "reviews/test.jsonl", progress=False)
    assert report["n"] == 25 and report["baselines"] is None and report["files"] == {}

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = tunelab.complete(model, "great good love\n\n###\n\n", logprobs=2)
    assert not [w for w in caught if "trained on prompts" in str(w.message)]  # it ends with the separator
    assert result["classification"] and len(result["probabilities"]) == 2
    with pytest.warns(UserWarning, match=r"trained on prompts that end with '\\n\\n###\\n\\n'"):
        tunelab.complete(model, "great good love")


def test_wait_raises_a_typed_error_unless_asked_not_to(store, tiny_models, no_worker):
    import tunelab

    job = tunelab.create_job(tiny_models.train, model=str(tiny_models.encoder), n_epochs=1, suffix="nb",
                             class_weights=True)  # a tunelab hyperparameter beyond OpenAI's
    assert job.status == "queued" and no_worker and job.to_dict()["hyperparameters_full"]["class_weights"] is True
    job.cancel()
    with pytest.raises(JobFailedError) as excinfo:
        job.wait(progress=False)
    assert excinfo.value.status == "cancelled" and excinfo.value.job_id == job.id
    assert job.wait(progress=False, check=False).status == "cancelled"
    with pytest.raises(InvalidInputError, match="results"):
        job.results()


def test_bad_requests_are_typed_errors_listing_every_problem(store, tiny_models, no_worker, tmp_path):
    import tunelab

    with pytest.raises(InvalidInputError) as excinfo:
        tunelab.create_job(tmp_path / "missing.jsonl", model="no-such-model", n_epochs=0, bogus=1)
    text = excinfo.value.render()
    assert "bogus" in text and "missing.jsonl does not exist" in text and "no-such-model" in text
    assert tunelab.list_jobs() == [] and not no_worker
    with pytest.raises(NotFoundError):
        tunelab.get_job("ft-doesnotexist0000")
    with pytest.raises(NotFoundError, match="does not exist"):
        tunelab.evaluate("ada", tmp_path / "missing.jsonl")


def test_a_dataframe_for_a_file_is_a_typed_error(store, tiny_models, no_worker):
    """A notebook user passes the DataFrame they just built: its printed table was read as a file
    name, an OSError 'File name too long' from deep inside the upload."""
    import pandas as pd

    import tunelab

    frame = pd.read_json(tiny_models.train, lines=True)
    with pytest.raises(InvalidInputError, match=r"training_file must be a path or a file id .*not a DataFrame.*to_json"):
        tunelab.create_job(frame, model=str(tiny_models.encoder))
    with pytest.raises(InvalidInputError, match="validation_file must be a path"):
        tunelab.create_job(tiny_models.train, model=str(tiny_models.encoder), validation_file=frame)
    with pytest.raises(InvalidInputError, match="test_file must be a path .*not a list"):
        tunelab.evaluate("ada", frame.to_dict("records"))
    with pytest.raises(InvalidInputError, match="train_file must be a path"):
        tunelab.compare(["ada"], tiny_models.valid, train_file=frame)
    assert tunelab.list_jobs() == [] and not no_worker


def test_interrupting_wait_says_the_job_goes_on(store, tiny_models, no_worker, monkeypatch):
    """The stop button in a notebook raises KeyboardInterrupt inside the event loop's sleep; the
    traceback now ends with a note that the job still runs and how to follow or stop it."""
    import tunelab

    job = tunelab.create_job(tiny_models.train, model=str(tiny_models.encoder), n_epochs=1)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr("tunelab.jobs.api.watch", interrupted)
    with pytest.raises(KeyboardInterrupt) as excinfo:
        job.wait()
    assert excinfo.value.__notes__ == [f"Stopped waiting for job {job.legacy_id}; it goes on in the background worker. "
                                       "job.wait() follows it again, job.cancel() stops it."]
    assert job.refresh().status == "queued"


def test_compare_takes_one_id_alone_and_names_in_order(store, fake_predictors, tmp_path):
    """A notebook passes one model as a string and names as a list, as `--names` takes them: a
    string was read as its characters ("given more than once: -, 1, 2, ...") and a list of names
    was an AttributeError."""
    import tunelab

    labels = [" 1", " 2", " 3", " 4", " 5"]
    parent = fake_predictors.register(store, "classifier", labels=labels, suffix="parent")
    child = fake_predictors.register(store, "classifier", labels=labels, suffix="child")
    test = tmp_path / "test.jsonl"
    write_classification_jsonl(test, 20, seed=2)

    alone = tunelab.compare(parent, test, progress=False)
    assert alone["models"] == [parent] and parent in alone["markdown"]
    named = tunelab.compare([parent, child], test, names=["1 epoch", "2 epochs"], progress=False)
    assert named["names"] == {parent: "1 epoch", child: "2 epochs"}
    assert named["markdown"].startswith("| metric | 1 epoch | 2 epochs |")
    with pytest.raises(InvalidInputError, match="1 name.*2 model"):
        tunelab.compare([parent, child], test, names=["only one"], progress=False)
    # a typo in the last name failed only after every model before it had been scored
    fake_predictors.loads.clear()
    with pytest.raises(InvalidInputError, match="Unknown model 'nope'"):
        tunelab.compare([parent, "nope"], test, progress=False)
    assert fake_predictors.loads == []


def test_reports_show_as_their_summary_in_a_notebook(store, fake_predictors, tmp_path):
    """The last line of a cell, `report` or `table`, showed a screenful of nested keys (calibration
    bins, confusion rows); IPython now shows what `tunelab evaluate` and `tunelab compare` print, and
    Jupyter renders the comparison's Markdown table. Both stay dicts."""
    import tunelab

    class Printer:  # what IPython.lib.pretty hands to _repr_pretty_
        def __init__(self):
            self.texts = []

        def text(self, text):
            self.texts.append(text)

    model = fake_predictors.register(store, "classifier", labels=[" 1", " 2", " 3", " 4", " 5"])
    test = tmp_path / "test.jsonl"
    write_classification_jsonl(test, 20, seed=2)
    report = tunelab.evaluate(model, test, progress=False)
    shown = Printer()
    report._repr_pretty_(shown, False)
    assert isinstance(report, dict) and report["n"] == 20
    assert shown.texts[0].startswith(f"Model:     {model}") and "Confusion matrix" in shown.texts[0]
    table = tunelab.compare(model, test, progress=False)
    shown = Printer()
    table._repr_pretty_(shown, False)
    assert isinstance(table, dict) and shown.texts == [table["markdown"]] == [table._repr_markdown_()]
    assert table._repr_markdown_().startswith(f"| metric | {model} |")


@pytest.mark.slow  # starts a fresh interpreter (this one has torch loaded already)
def test_import_tunelab_stays_cheap():
    code = ("import sys, tunelab; assert tunelab.create_job and tunelab.Job; "
            "heavy = [m for m in ('torch', 'transformers', 'pandas', 'fastapi') if m in sys.modules]; "
            "assert heavy == [], heavy; print(sorted(set(tunelab.__all__) - set(dir(tunelab))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_build_and_prepare_data_are_calls_too(tmp_path):
    """The README said 'everything above is also a function call', but building a dataset and
    prepare_data needed `!tunelab ...` in a notebook (and failed where the kernel's venv is not on PATH)."""
    import json

    import tunelab
    from tunelab.errors import DataFileError

    class Printer:
        def __init__(self):
            self.texts = []

        def text(self, text):
            self.texts.append(text)

    raw = tmp_path / "dataset_en_train.json"
    words = {1: "awful broke", 2: "poor flimsy", 3: "okay average", 4: "good solid", 5: "great perfect"}
    with open(raw, "w") as fh:
        for i in range(200):
            stars = i % 5 + 1
            fh.write(json.dumps({"review_id": f"en_{i}", "product_id": f"p{i}", "reviewer_id": f"r{i}",
                                 "stars": stars, "review_body": f"{words[stars]} item number {i}",
                                 "review_title": words[stars], "language": "en",
                                 "product_category": "home"}) + "\n")
    built = tunelab.build_dataset(raw, tmp_path / "reviews", preset="amazon-stars", merge={"1": "2"})
    assert built.labels == ["2", "3", "4", "5"] and sum(built.counts[s] for s in ("train", "valid", "test")) == 200
    assert all(built.paths[s].is_file() for s in ("train", "valid", "test", "labels"))
    shown = Printer()
    built._repr_pretty_(shown, False)
    assert "4 ordinal labels" in shown.texts[0] and str(built.paths["train"]) in shown.texts[0]
    with pytest.raises(DataFileError):
        tunelab.build_dataset(tmp_path / "missing.json", tmp_path / "nothing", preset="amazon-stars")
    assert not (tmp_path / "nothing").exists()

    legacy = tmp_path / "legacy.jsonl"  # prompts without a separator, completions without a leading space
    legacy.write_text("".join(json.dumps({"prompt": f"{words[i % 5 + 1]} thing {i}", "completion": str(i % 5 + 1)})
                              + "\n" for i in range(100)))
    prepared = tunelab.prepare_data(legacy)
    assert prepared["applied"] and len(prepared["paths"]) == 2  # fixed, then split into train and valid
    rows = [json.loads(line) for line in prepared["paths"][0].read_text().splitlines()]
    assert all(r["completion"].startswith(" ") and r["prompt"].endswith("\n\n###\n\n") for r in rows), rows[0]
    assert str(prepared["paths"][0]) in prepared["next_command"]
    clean = tunelab.prepare_data(prepared["paths"][0], split=False)
    assert clean["paths"] == [] and str(prepared["paths"][0]) in clean["next_command"]


def test_reports_show_their_plots_inline_in_a_notebook(store, fake_predictors, tmp_path):
    """evaluate and compare wrote their PNGs with out_dir, but a notebook showed only text: seeing the
    confusion matrix meant opening the file."""
    import tunelab

    model = fake_predictors.register(store, "classifier", labels=[" 1", " 2", " 3", " 4", " 5"])
    test = tmp_path / "test.jsonl"
    write_classification_jsonl(test, 20, seed=2)
    html = tunelab.evaluate(model, test, out_dir=tmp_path / "eval", progress=False)._repr_html_()
    assert html.startswith("<pre>Model:") and html.count('src="data:image/png;base64,iVBOR') >= 2
    assert 'alt="confusion_matrix"' in html
    assert "<img" not in tunelab.evaluate(model, test, progress=False)._repr_html_()
    table = tunelab.compare(model, test, out_dir=tmp_path / "cmp", progress=False)
    html = table._repr_html_()
    assert "<table>" in html and html.count("<img") == 1 and 'alt="chart"' in html
    assert tunelab.compare(model, test, progress=False)._repr_html_() is None  # the Markdown table, rendered
