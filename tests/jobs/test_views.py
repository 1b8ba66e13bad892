"""The one place job, event, checkpoint, file and model objects are built: their field order is
OpenAI's (the server's protocol models accept them as they are), and hyperparameters are the
typed plan's."""

from __future__ import annotations

import pytest

from tunelab.errors import NotFoundError
from tunelab.jobs import views
from tunelab.server.files.protocol import FileObject
from tunelab.server.fine_tunes.protocol import FineTune, FineTuneEvent
from tunelab.server.fine_tuning.protocol import FineTuningJob, FineTuningJobCheckpoint, FineTuningJobEvent
from tunelab.server.models.protocol import Model


def fields(model) -> list[str]:
    return list(model.model_fields)


def test_current_job_view_in_openais_order_with_resolved_hyperparameters(store, queued):
    view = views.job_view(queued, ["a notice"])
    assert list(view) == fields(FineTuningJob)
    # "auto" resolved by training/recipes.py: 2 epochs of 120 rows give a batch of 8 (the smallest auto
    # batch; at least 150 steps are wanted), rate x0.5
    assert view["hyperparameters"] == {"batch_size": 8, "learning_rate_multiplier": 0.5, "n_epochs": 2}
    assert view["method"]["supervised"]["hyperparameters"] == view["hyperparameters"]
    assert view["hyperparameters_full"]["batch_size"] == 8 and view["hyperparameters_full"]["method"] == "classifier"
    assert view["training_method"] == "classifier" and view["legacy_id"] == queued.legacy_id
    assert view["classification"]["classification_n_classes"] == 5 and view["classification"]["classification"]
    assert view["classification"]["labels"] == [" 1", " 2", " 3", " 4", " 5"]
    assert view["final_metrics"] is None and view["notices"] == ["a notice"]
    assert FineTuningJob.model_validate(view).model_dump(mode="json") == view


def test_legacy_job_view_inlines_files_and_events(store, queued):
    view = views.legacy_job_view(store, queued, with_events=True)
    assert list(view) == fields(FineTune)
    assert view["id"] == queued.legacy_id and view["status"] == "pending"
    assert view["hyperparams"]["batch_size"] == 8 and view["hyperparams"]["n_epochs"] == 2
    assert view["hyperparams"]["compute_classification_metrics"] is True
    assert "classification_positive_class" not in view["hyperparams"]  # unset options are left out
    assert view["training_files"][0]["id"] == queued.training_file and view["cumulative_epochs"] == 2
    assert view["events"][0]["message"] == f"Created fine-tune: {queued.legacy_id}"  # the legacy texts
    dumped = FineTune.model_validate(view).model_dump(mode="json", exclude_none=True)
    assert views.drop_none(view) == dumped  # what the CLI prints is what the server sends
    assert views.legacy_job_view(store, queued)["events"] is None


def test_views_read_hyperparameters_through_the_plan(store, queued):
    # A row from before plans were typed: batch size "auto" stored as None, the default beside it.
    old = store.update_job(queued.id, hyperparams={**queued.hyperparams, "batch_size": None},
                           options={**queued.options, "default_batch_size": 8})
    assert views.job_view(old)["hyperparameters"]["batch_size"] == 8
    assert views.legacy_job_view(store, old)["hyperparams"]["batch_size"] == 8


def test_a_deleted_file_drops_out_of_the_legacy_view(store, queued):
    store.request_cancel(queued.id)
    store.delete_file(queued.validation_file)
    assert views.legacy_job_view(store, store.get_job(queued.id))["validation_files"] == []


def test_event_views(store, queued):
    metrics = store.add_event(queued.id, "Step 1/2", level="warning", data={"step": 1, "loss": 0.5})
    view = views.event_view(metrics)
    assert list(view) == fields(FineTuningJobEvent)
    assert view["level"] == "warn" and view["type"] == "metrics" and view["data"] == {"step": 1, "loss": 0.5}
    plain = views.event_view(store.add_event(queued.id, "hello", level="debug"))
    assert plain["level"] == "info" and plain["type"] == "message" and plain["data"] is None
    FineTuningJobEvent.model_validate(view)
    legacy = views.legacy_event_view(metrics)
    assert list(legacy) == fields(FineTuneEvent) and legacy["level"] == "warning"


def test_checkpoint_view(store, queued):
    ckpt = store.add_checkpoint(queued.id, step=7, epoch=1, path="/nowhere",
                                metrics={"training_loss": 0.4, "validation_loss": 0.6, "classification/accuracy": 0.8})
    view = views.checkpoint_view(queued, ckpt)
    assert list(view) == fields(FineTuningJobCheckpoint)
    assert view["fine_tuned_model_checkpoint"] == f"{queued.id}:ckpt-step-7"
    assert view["metrics"]["train_loss"] == 0.4 and view["metrics"]["valid_loss"] == 0.6
    assert view["all_metrics"]["classification/accuracy"] == 0.8
    FineTuningJobCheckpoint.model_validate(view)


def test_file_and_model_views(store, queued, tiny_models):
    file_view = views.file_view(store.get_file(queued.training_file))
    assert list(file_view) == fields(FileObject) and file_view["n_rows"] == 120
    model_id = tiny_models.register(store, "classifier", suffix="clf")
    tuned = views.find_model_view(store, model_id)
    assert list(tuned) == fields(Model) and tuned["kind"] == "fine-tuned" and tuned["method"] == "classifier"
    assert views.find_model_view(store, "ADA")["kind"] == "alias"
    assert {v["id"] for v in views.model_views(store)} >= {"minilm-l6", "smollm2-135m", "ada", model_id}
    for view in views.model_views(store):
        Model.model_validate(view)
    with pytest.raises(NotFoundError):
        views.find_model_view(store, "no-such-model")


def test_drop_none_keeps_data_fields_whole():
    view = {"a": None, "hyperparams": {"lora": None, "n_epochs": 1}, "error": {"param": None},
            "files": [{"expires_at": None, "id": "file-x"}]}
    assert views.drop_none(view) == {"hyperparams": {"n_epochs": 1}, "error": {"param": None},
                                     "files": [{"id": "file-x"}]}
