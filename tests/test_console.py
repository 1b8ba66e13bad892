"""Progress in a Jupyter notebook without ipywidgets (`pip install jupyterlab` does not bring it):
no 'IProgress not found' TqdmWarning in the cell, and no text bar torn into one copy per event
line. The kernel is faked (an IPython module whose shell is a ZMQInteractiveShell)."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

from tests.helpers.fake_predictor import FakePredictor
from tunelab import console
from tunelab.jobs.progress import watch
from tunelab.store import Store
from tunelab.store.records import SUCCEEDED


@pytest.fixture
def notebook_without_widgets(monkeypatch):
    """A Jupyter kernel as tqdm.autonotebook and tunelab.console see it, with ipywidgets missing;
    tqdm's notebook modules are imported afresh, as in a new kernel."""
    shell_class = type("ZMQInteractiveShell", (), {"config": {"IPKernelApp": {}}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=shell_class))
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("ipykernel.zmqshell"))  # tqdm looks
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # `import ipywidgets` fails
    real_find_spec = console.importlib.util.find_spec
    monkeypatch.setattr(console.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ipywidgets" else real_find_spec(name, *a))
    for name in ("tqdm.auto", "tqdm.autonotebook", "tqdm.notebook"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert console.in_notebook() and not console.notebook_widgets()


def test_scoring_bar_in_a_notebook_without_widgets_has_no_tqdm_warning(notebook_without_widgets):
    from tunelab.evaluation.report import score_rows

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        logp, _ = score_rows(FakePredictor("fake", labels=[" 1", " 2"]), ["great\n\n###\n\n", "awful\n\n###\n\n"], [" 1", " 2"])
    assert logp.shape == (2, 2)
    assert [str(w.message) for w in caught] == []


def test_watch_in_a_notebook_without_widgets_prints_plain_lines(notebook_without_widgets, tiny_models, capsys,
                                                                 monkeypatch):
    from tunelab.jobs.submit import job_request, submit

    monkeypatch.setattr("tunelab.training.worker.ensure_worker", lambda store: None)
    store = Store()
    job = submit(store, job_request(tiny_models.train, str(tiny_models.encoder))).job
    for step in range(1, 7):
        store.add_event(job.id, f"Step {step}/6: training loss=1.0" + (", validation loss=0.9" if step % 3 == 0 else ""),
                        data={"step": step, "total_steps": 6, "loss": 1.0, "validation_loss": 0.9 if step % 3 == 0 else None})
    store.add_event(job.id, "Job succeeded.")
    store.update_job(job.id, status=SUCCEEDED, fine_tuned_model="enc:ft-personal-2026-01-01-00-00-00")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert watch(store, job.id, poll_s=0.01).status == SUCCEEDED
    captured = capsys.readouterr()
    assert [str(w.message) for w in caught] == []
    assert "\r" not in captured.out + captured.err and captured.err == ""  # no bar, no bar fragments
    steps = [line.split("] ", 1)[1] for line in captured.out.splitlines() if "] Step " in line]
    assert steps == ["Step 3/6: training loss=1.0, validation loss=0.9", "Step 6/6: training loss=1.0, validation loss=0.9"]


def test_loading_a_model_in_a_notebook_without_widgets_has_no_tqdm_warning(notebook_without_widgets):
    """transformers imports tqdm.auto when it is first imported (in a notebook: at the first evaluate or
    complete), which printed the TqdmWarning into that cell. tunelab imports it quietly first."""
    from tunelab.models.loading import quiet_transformers

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_transformers()
        import tqdm.auto  # what `import transformers` does in a fresh kernel

    assert tqdm.auto.tqdm.__module__ == "tqdm.asyncio"  # the text bar
    assert [str(w.message) for w in caught] == []
