"""The default serving mode: every loaded model runs in its own process (no GIL contention with
the HTTP thread). Same answers as in-process, typed errors across the pipe, a crashed model
process reported as 503 and reloaded, the processes of unloaded models and of a stopped server ended."""

from __future__ import annotations

import os
import signal

import numpy as np
import openai
import pytest

from tests.server.conftest import LABELS, PROMPT, make_client, wait_dead

pytestmark = pytest.mark.slow  # spawns a process per model


def test_models_run_in_their_own_processes(store, real_models):
    from tunelab.inference.predictor import load_predictor
    from tunelab.server import create_app

    app = create_app(store, max_loaded_models=2)
    assert app.state.tunelab.settings["model_processes"]
    oa, http = make_client(app)
    clf, lm = real_models["classifier"], real_models["lm"]
    with http:
        response = oa.completions.create(model=clf, prompt=PROMPT, max_tokens=1, temperature=0, logprobs=5)
        expected = load_predictor(clf, store).score_labels([PROMPT])[0]
        top = response.choices[0].logprobs.top_logprobs[0]
        assert top == pytest.approx({l: float(v) for l, v in zip(LABELS, expected)}, abs=1e-5)
        scores = http.post("/v1/labels/score", json={"model": clf, "prompt": [PROMPT, "bad"]}).json()
        assert scores["data"][0]["label"] == LABELS[int(np.argmax(expected))]

        generated = oa.completions.create(model=lm, prompt="great good", max_tokens=4, temperature=0, logprobs=2)
        local = load_predictor(lm, store).complete(["great good"], max_tokens=4, temperature=0, logprobs=2)[0][0]
        assert generated.choices[0].text == local.text
        chat = oa.chat.completions.create(model=lm, messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                                          temperature=0)
        assert chat.choices[0].message.role == "assistant"
        with pytest.raises(openai.BadRequestError) as excinfo:  # context check uses the child's config
            oa.completions.create(model=lm, prompt="good " * 300, max_tokens=16)
        assert excinfo.value.code == "context_length_exceeded"

        stats = http.get("/v1/tunelab/stats").json()
        pids = stats["model_pids"]
        assert set(pids) == {clf, lm} and os.getpid() not in pids.values()

        # a crashed model process: a call on it is a ModelUnavailableError (503), and the pool
        # notices the dead process and loads the model again for the next request
        from tunelab.errors import ModelUnavailableError

        crashed = app.state.tunelab.pool.peek(clf)
        os.kill(pids[clf], signal.SIGKILL)
        assert wait_dead(pids[clf])
        with pytest.raises(ModelUnavailableError, match="stopped unexpectedly"):
            crashed.complete([PROMPT], max_tokens=1, temperature=0)
        again = oa.completions.create(model=clf, prompt=PROMPT, max_tokens=1, temperature=0, logprobs=5)
        assert again.choices[0].logprobs.top_logprobs[0] == pytest.approx(top, abs=1e-5)
        new_clf_pid = http.get("/v1/tunelab/stats").json()["model_pids"][clf]
        assert new_clf_pid != pids[clf]

        # deleting a model unloads it: its process stops
        oa.models.delete(lm)
        assert app.state.tunelab.pool.loaded() == [clf]
        assert wait_dead(pids[lm])

        # loading errors cross the process boundary as the library's typed errors
        with pytest.raises(openai.BadRequestError) as excinfo:
            oa.completions.create(model="minilm-l6", prompt="x")
        assert "encoder" in excinfo.value.message
        remaining = http.get("/v1/tunelab/stats").json()["model_pids"]
    # shutting the app down stops every model process
    for pid in remaining.values():
        assert wait_dead(pid)
