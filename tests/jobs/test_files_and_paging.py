""""A path or a file id" resolved once (planning, evaluation, the Python API), the jobs layer's
file helpers, and the one pagination helper."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.helpers.tiny_models import write_classification_jsonl
from tunelab.data.files import load_data_file, resolve_path
from tunelab.errors import DataFileError, InvalidInputError, NotFoundError
from tunelab.jobs.files import jobs_using, results_path, upload_file
from tunelab.jobs.paging import page


@pytest.fixture
def train(tmp_path):
    return write_classification_jsonl(tmp_path / "train.jsonl", 10)


def test_a_path_is_read_and_uploaded_only_when_asked(store, train):
    data = load_data_file(store, train, "test")
    assert data.path == train and data.file_id is None and len(data.rows) == 10
    assert store.list_files() == []
    uploaded = load_data_file(store, str(train), upload=True)
    (record,) = store.list_files()
    assert uploaded.file_id == record.id and record.n_rows == 10 and record.purpose == "fine-tune"


def test_a_file_id_is_read_from_the_store(store, train):
    record = store.add_file(train)
    data = load_data_file(store, record.id, upload=True)
    assert data.file_id == record.id and str(data.path) == record.path and len(data.rows) == 10
    assert len(store.list_files()) == 1  # nothing uploaded twice


def test_unknown_paths_and_ids_name_the_role(store, tmp_path):
    with pytest.raises(NotFoundError) as excinfo:
        resolve_path(store, "missing.jsonl", "test")
    assert excinfo.value.message == "The test file missing.jsonl does not exist." and "file id" in excinfo.value.hint
    with pytest.raises(NotFoundError, match="The validation file file-0123456789abcdef01234567 is not in the store"):
        resolve_path(store, "file-0123456789abcdef01234567", "validation")
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataFileError):
        load_data_file(store, tmp_path / "empty.jsonl")


def test_planning_reports_a_missing_file_in_its_own_words(store, tmp_path):
    from tunelab.jobs.submit import job_request, submit

    with pytest.raises(InvalidInputError) as excinfo:
        submit(store, job_request(tmp_path / "nope.jsonl", "ada"), start_worker=False)
    assert f"training file {tmp_path / 'nope.jsonl'} does not exist" in excinfo.value.problems


def test_upload_file_validates_fine_tune_data(store, train, tmp_path):
    assert upload_file(store, train).n_rows == 10
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    with pytest.raises(DataFileError, match="completion"):
        upload_file(store, bad)
    with pytest.raises(InvalidInputError, match="does not exist"):
        upload_file(store, tmp_path / "nope.jsonl")


def test_files_of_unfinished_jobs_and_results(store, queued):
    assert jobs_using(store, queued.training_file) == [queued.id]
    assert jobs_using(store, queued.validation_file) == [queued.id]
    with pytest.raises(InvalidInputError, match="has no results yet"):
        results_path(store, queued)
    store.request_cancel(queued.id)
    assert jobs_using(store, queued.training_file) == []
    failed = store.update_job(queued.id, status="failed", error={"code": "invalid_training_file",
                                                                 "message": "the labels do not match"})
    with pytest.raises(InvalidInputError, match=r"has no results: it failed before its first step was recorded "
                                                r"\(the labels do not match\)"):
        results_path(store, failed)


def items(*ids):
    return [SimpleNamespace(id=i) for i in ids]


def test_page_after_a_cursor_with_a_limit():
    rows = items("a", "b", "c", "d")
    assert page(rows, limit=2) == (rows[:2], True)
    assert page(rows, after="b", limit=2) == (rows[2:], False)
    assert page(rows, after="d") == ([], False)
    assert page(rows) == (rows, False)
    assert page(rows[:3], limit=2) == (rows[:2], True)  # fetched with one extra row: more follow


def test_a_stale_cursor_is_an_error_not_the_first_page():
    with pytest.raises(InvalidInputError, match=r"^No event x in job j \(the `after` cursor\)\.$"):
        page(items("a"), after="x", unknown="No event {after} in job j")
    assert page([{"key": 1}, {"key": 2}], after=1, key=lambda d: d["key"]) == ([{"key": 2}], False)
