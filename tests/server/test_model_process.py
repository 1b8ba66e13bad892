"""The default serving mode: every loaded model runs in its own process (no GIL contention with
the HTTP thread). Same answers as in-process, typed errors across the pipe, a crashed model
process replaced and the call run again (a 503 that says retry only when it dies twice on the
same call), the processes of unloaded models and of a stopped server ended."""

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

        # a crashed model process: the next call starts a new one and runs there (the same
        # predictor, so the pool does not load a second copy)
        crashed = app.state.tunelab.pool.peek(clf)
        os.kill(pids[clf], signal.SIGKILL)
        assert wait_dead(pids[clf])
        rerun = crashed.complete([PROMPT], max_tokens=1, temperature=0, logprobs=5)[0][0]
        assert rerun.top_logprobs[0] == pytest.approx(top, abs=1e-5) and crashed.restarts == 1
        assert app.state.tunelab.pool.peek(clf) is crashed
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


def test_a_process_that_dies_twice_on_one_call_fails_it_with_a_retry(monkeypatch):
    """The rule, without processes: one crash is absorbed (new child, same call again); a second
    crash on the same call is a TemporarilyUnavailableError (503, retry) and closes the predictor,
    so that the pool loads a fresh one for the next request."""
    from tunelab.errors import TemporarilyUnavailableError
    from tunelab.server import model_process

    class Dying(model_process.ProcessPredictor):
        def __init__(self, deaths: int):
            self.model_id, self.closed, self.restarts, self.deaths = "m", False, 0, deaths
            self._lock = model_process.threading.Lock()
            self._conn = type("Conn", (), {"close": lambda self: None})()

        def _start(self):
            return {}

        def _exchange(self, message):
            if self.deaths:
                self.deaths -= 1
                raise model_process._ChildDied("was killed by signal 9 (SIGKILL)")
            return ["answer"]

    once = Dying(1)
    assert once.complete(["x"]) == ["answer"] and once.restarts == 1 and once.alive
    twice = Dying(2)
    with pytest.raises(TemporarilyUnavailableError, match="signal 9") as excinfo:
        twice.complete(["x"])
    assert excinfo.value.code == "model_crashed" and not twice.alive
