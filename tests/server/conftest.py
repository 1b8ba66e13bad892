"""Fixtures of the server tests: tiny fine-tuned models registered straight into the store (no
training, so inference tests take a second), an in-process app driven by the official `openai`
client through FastAPI's TestClient, and a real `tunelab serve` on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import REPO_ROOT
from tests.helpers.tiny_models import build_tiny_decoder, build_tiny_encoder, write_classification_jsonl

LABELS = [" 1", " 2", " 3", " 4", " 5"]
CHAT_TEMPLATE = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}assistant:{% endif %}")
PROMPT = "great good love perfect\n\n###\n\n"


@pytest.fixture(scope="session")
def tiny_bases(tmp_path_factory) -> dict[str, Path]:
    """Random-weight base folders, built once: a BERT encoder and a Llama decoder with a chat template."""
    root = tmp_path_factory.mktemp("tiny-bases")
    enc = build_tiny_encoder(root / "enc")
    dec = build_tiny_decoder(root / "dec")
    config = json.loads((dec / "tokenizer_config.json").read_text())
    config["chat_template"] = CHAT_TEMPLATE
    (dec / "tokenizer_config.json").write_text(json.dumps(config))
    return {"enc": enc, "dec": dec}


@pytest.fixture(scope="session")
def tiny_finetuned(tiny_bases, tmp_path_factory) -> dict[str, Path]:
    """Model folders as a job leaves them (weights, tokenizer, tunelab.json), built once."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from tunelab.models.loading import load_tokenizer, save_fine_tuned

    root = tmp_path_factory.mktemp("tiny-finetuned")
    torch.manual_seed(0)
    enc, dec = tiny_bases["enc"], tiny_bases["dec"]
    clf = AutoModelForSequenceClassification.from_pretrained(
        str(enc), num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id={l: i for i, l in enumerate(LABELS)})
    common = {"lora": False, "max_length": 64, "base_learning_rate": 1e-4, "default_batch_size": 8,
              "epochs_this_job": 1, "job_id": None}
    save_fine_tuned(clf, load_tokenizer(enc), root / "classifier",
                    {**common, "method": "classifier", "labels": LABELS, "kind": "encoder", "base_model": str(enc),
                     "classification": True})
    lm = AutoModelForCausalLM.from_pretrained(str(dec))
    save_fine_tuned(lm, load_tokenizer(dec), root / "lm",
                    {**common, "method": "lm", "labels": None, "kind": "causal", "base_model": str(dec),
                     "classification": False})
    save_fine_tuned(lm, load_tokenizer(dec), root / "lm-labels",
                    {**common, "method": "lm", "labels": LABELS, "kind": "causal", "base_model": str(dec),
                     "classification": True})
    return {"classifier": root / "classifier", "lm": root / "lm", "lm-labels": root / "lm-labels"}


def register(store, folder: Path, tmp_path: Path, *, name: str, method: str, labels, suffix: str | None = None) -> str:
    """Put a copy of a model folder into the store, as the runner does at the end of a job."""
    copy = tmp_path / f"build-{name}-{suffix or ''}"
    shutil.copytree(folder, copy)
    record = store.register_model(base_id=name, built_dir=copy, base_model=name, method=method, labels=labels,
                                  cumulative_epochs=1, suffix=suffix,
                                  meta={"kind": "encoder" if method == "classifier" else "causal"})
    return record.id


@pytest.fixture
def store(tunelab_home):
    from tunelab.store import Store

    return Store()


@pytest.fixture
def models(store, tiny_finetuned, tmp_path) -> dict[str, str]:
    """Ids of three registered fine-tuned models: classifier, free-form lm and lm with labels."""
    return {
        "classifier": register(store, tiny_finetuned["classifier"], tmp_path, name="enc", method="classifier",
                               labels=LABELS, suffix="clf"),
        "lm": register(store, tiny_finetuned["lm"], tmp_path, name="dec", method="lm", labels=None, suffix="gen"),
        "lm-labels": register(store, tiny_finetuned["lm-labels"], tmp_path, name="dec", method="lm", labels=LABELS,
                              suffix="lab"),
    }


def make_client(app, api_key: str = "sk-test", **kwargs):
    """The official client, in-process: TestClient is an httpx.Client that calls the ASGI app."""
    from fastapi.testclient import TestClient

    http = TestClient(app, **kwargs)
    return openai.OpenAI(base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0), http


@pytest.fixture
def app(store):
    from tunelab.server import create_app

    return create_app(store, isolate_models=False)  # models in this process: no start-up per test


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
