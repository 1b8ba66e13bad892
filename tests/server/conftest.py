"""Fixtures of the server tests: fake models (`models`, no weights: route tests take milliseconds)
and tiny random-weight fine-tuned models (`real_models`, real inference) registered straight into
the store, an in-process app driven by the official `openai` client through FastAPI's TestClient,
and a real `tunelab serve` on a free loopback port (tests using it are marked slow)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import REPO_ROOT
from tests.helpers.tiny_models import LABELS, write_classification_jsonl

PROMPT = "great good love perfect\n\n###\n\n"


@pytest.fixture
def store(tunelab_home):
    from tunelab.store import Store

    return Store()


@pytest.fixture
def models(store, fake_predictors) -> dict[str, str]:
    """Ids of three registered fake models (no weights; see tests/helpers/fake_predictor.py):
    classifier, free-form lm and lm with labels. The `app` serves them in milliseconds."""
    return {
        "classifier": fake_predictors.register(store, "classifier", labels=LABELS, name="enc", suffix="clf"),
        "lm": fake_predictors.register(store, "lm", labels=None, name="dec", suffix="gen"),
        "lm-labels": fake_predictors.register(store, "lm", labels=LABELS, name="dec", suffix="lab"),
    }


@pytest.fixture
def real_models(store, tiny_models) -> dict[str, str]:
    """Ids of three registered tiny random-weight models (real inference): classifier, free-form lm
    and lm with labels. The decoder's tokenizer has a chat template (tests/helpers/tiny_models.py)."""
    return {
        "classifier": tiny_models.register(store, "classifier", name="enc", suffix="clf"),
        "lm": tiny_models.register(store, "lm", name="dec", suffix="gen"),
        "lm-labels": tiny_models.register(store, "lm-labels", name="dec", suffix="lab"),
    }


def make_client(app, api_key: str = "sk-test", **kwargs):
    """The official client, in-process: TestClient is an httpx.Client that calls the ASGI app."""
    from fastapi.testclient import TestClient

    http = TestClient(app, **kwargs)
    return openai.OpenAI(base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0), http


@pytest.fixture
def app(store, fake_predictors):
    """Models load in this process (no start-up per test): fakes registered by `models`, and any
    other model (`real_models`) through the real loader."""
    from tunelab.server import create_app

    return create_app(store, loader=fake_predictors.loader)


@pytest.fixture
def client(app):
    oa, http = make_client(app)
    with http:
        yield oa


@pytest.fixture
def http(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as http:
        yield http


@pytest.fixture
def training_files(tmp_path) -> tuple[Path, Path]:
    return (write_classification_jsonl(tmp_path / "train.jsonl", 60),
            write_classification_jsonl(tmp_path / "valid.jsonl", 20, seed=1))


@pytest.fixture(autouse=True)
def quick_worker(monkeypatch, tunelab_home):
    """Workers started by the tests stop 2 s after their queue empties; any still alive at the end
    of a test (only ones this test started, found by the pid in the worker lock) are stopped."""
    monkeypatch.setenv("TUNELAB_WORKER_IDLE", "2")
    yield
    stop_worker(Path(tunelab_home))


def stop_worker(home: Path, wait: float = 10.0) -> None:
    try:
        pid = int((home / "worker.lock").read_text().strip() or 0)
    except (OSError, ValueError):
        return
    if pid and not wait_dead(pid, wait):
        os.kill(pid, signal.SIGTERM)


def wait_dead(pid: int, timeout: float = 20.0) -> bool:
    """True once the process has exited (a zombie counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split(")")[-1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)
    return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveServer:
    """`python -m tunelab serve` in a subprocess: the real CLI, uvicorn and sockets."""

    def __init__(self, home: Path, *args: str, api_key: str | None = None):
        self.home = home
        self.api_key = api_key
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        env = dict(os.environ, TUNELAB_HOME=str(home), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   TUNELAB_WORKER_IDLE="2",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), os.environ.get("PYTHONPATH")])))
        env.pop("TUNELAB_API_KEY", None)
        if api_key:
            env["TUNELAB_API_KEY"] = api_key  # the CLI reads the key from the environment too
        self.log = open(home.parent / f"serve-{self.port}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tunelab", "serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "warning", *args], env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tunelab serve exited: {Path(self.log.name).read_text()}")
            try:
                httpx.get(f"{self.base_url}/models", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError("tunelab serve did not start in time")

    def client(self, api_key: str | None = None, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=api_key or self.api_key or "unused", max_retries=0,
                             **kwargs)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        stop_worker(self.home)


def in_process_worker(store, monkeypatch, idle_exit: float) -> list[threading.Thread]:
    """Make ensure_worker start a worker thread of this process (one at a time) instead of a
    process; returns the list of the threads it starts. When done, join them and empty the home's
    worker.lock (see stop_in_process_worker)."""
    from tunelab.training.worker import WorkerOptions, run_worker

    threads: list[threading.Thread] = []

    def ensure(_store):
        if any(t.is_alive() for t in threads):
            return None
        t = threading.Thread(target=run_worker, args=(store, WorkerOptions(idle_exit=idle_exit, device="cpu")),
                             daemon=True)
        t.start()
        threads.append(t)
        return None

    monkeypatch.setattr("tunelab.training.worker.ensure_worker", ensure)
    return threads


def stop_in_process_worker(store, threads: list[threading.Thread], timeout: float = 120) -> None:
    for t in threads:
        t.join(timeout)
    # The lock file names this process; the autouse quick_worker teardown would stop it as a worker.
    (store.home / "worker.lock").write_text("")
