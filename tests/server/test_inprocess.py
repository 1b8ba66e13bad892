"""Serving models in the server process (`tunelab serve --model-processes never`, and `auto` on a
CPU): the same calibrated answers as the Predictor, no model process, the process set up for
serving (intra-op threads capped, a short GIL switch interval)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from tests.server.conftest import PROMPT, make_client


@pytest.fixture
def restore_process(monkeypatch):
    from tunelab.server import inprocess

    monkeypatch.setattr(inprocess, "_done", False)
    threads, interval = torch.get_num_threads(), sys.getswitchinterval()
    yield
    torch.set_num_threads(threads)
    sys.setswitchinterval(interval)


def test_in_process_answers_match_the_predictor(store, real_models, restore_process, monkeypatch):
    from tunelab.inference.predictor import load_predictor
    from tunelab.server import create_app
    from tunelab.server.inprocess import SWITCH_INTERVAL_S

    from tunelab.runtime import available_cores

    from tunelab.inference.predictor import Predictor

    monkeypatch.setenv("TUNELAB_DEVICE", "cpu")
    monkeypatch.delenv("TUNELAB_THREADS", raising=False)
    seen_threads = []
    complete = Predictor.complete

    def recording_complete(self, *args, **kwargs):
        seen_threads.append(torch.get_num_threads())  # in the thread that runs the forward pass
        return complete(self, *args, **kwargs)

    monkeypatch.setattr(Predictor, "complete", recording_complete)
    app = create_app(store, isolate_models="auto")
    assert app.state.tunelab.settings["model_processes"] is False
    oa, http = make_client(app)
    clf = real_models["classifier"]
    with http:
        response = oa.completions.create(model=clf, prompt=[PROMPT, "bad awful"], max_tokens=1, temperature=0,
                                         logprobs=5)
        pids = http.get("/v1/tunelab/stats").json()["model_pids"]
        concurrency = app.state.tunelab.pool.peek(clf).concurrency
    local = load_predictor(clf, store)
    expected = local.score_labels([PROMPT, "bad awful"])  # calibrated: the model's temperature applied
    for choice, row in zip(response.choices, expected):
        assert choice.logprobs.top_logprobs[0] == pytest.approx(dict(zip(local.labels, row.tolist())), abs=1e-5)
    assert pids == {clf: os.getpid()}
    assert seen_threads and set(seen_threads) == {1}  # one thread per forward pass, one pass per core at once
    assert concurrency == available_cores()
    assert app.state.tunelab.batchers.max_in_flight == available_cores()
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)


def test_model_processes_choice(store, monkeypatch):
    from tunelab.server import create_app

    monkeypatch.setenv("TUNELAB_DEVICE", "cpu")
    assert create_app(store, isolate_models="never").state.tunelab.settings["model_processes"] is False
    assert create_app(store, isolate_models="always").state.tunelab.settings["model_processes"] is True
    monkeypatch.setenv("TUNELAB_DEVICE", "cuda")  # decided from the device, without touching a GPU
    assert create_app(store, isolate_models="auto").state.tunelab.settings["model_processes"] is True


def test_replicas_share_the_model_and_answer_concurrently(store, real_models, restore_process):
    """Two batches at once on two replicas: the same answers as one after the other."""
    from concurrent.futures import ThreadPoolExecutor

    from tunelab.inference.predictor import load_predictor
    from tunelab.server.inprocess import ConcurrentPredictor

    local = load_predictor(real_models["classifier"], store)
    shared = ConcurrentPredictor(local, 2)
    prompts = [[PROMPT, "bad awful"], ["great good love", "fits small"]] * 4
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda p: shared.score_labels(p), prompts))
    for batch, scores in zip(prompts, together):
        assert scores == pytest.approx(local.score_labels(batch), abs=1e-6)
    assert shared.labels == local.labels and shared.model is local.model
