"""`tunelab serve` wiring (the live-server tests run the real command)."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli


@pytest.fixture
def captured(monkeypatch):
    calls = {}

    def fake_run(app, **kwargs):
        # What uvicorn does with an import string: import it in the serving process, call the factory.
        from uvicorn.importer import import_from_string

        assert isinstance(app, str) and kwargs.pop("factory") is True
        calls["app"] = import_from_string(app)()
        calls.update(kwargs)

    monkeypatch.setattr("uvicorn.run", fake_run)
    monkeypatch.setattr("tunelab.netserve.ensure_can_listen", lambda host, port: None)  # whatever holds 8000 here
    return calls


def test_serve_defaults_to_loopback(captured):
    assert run_cli("serve") == 0
    assert captured["host"] == "127.0.0.1" and captured["port"] == 8000
    state = captured["app"].state.tunelab
    assert state.settings["loopback_only"] and not state.settings["auth"]
    assert state.settings["max_loaded_models"] == 2 and state.max_upload_bytes == 512 * 2**20


def test_serve_options_and_env_key(captured, monkeypatch, capsys):
    monkeypatch.setenv("TUNELAB_API_KEY", "sk-env")
    assert run_cli("serve", "--host", "0.0.0.0", "--port", "9001", "--api-key", "sk-flag", "--max-loaded-models", "3",
                   "--cors-origin", "http://localhost:3000", "--max-upload-mb", "2") == 0
    state = captured["app"].state.tunelab
    assert state.api_keys == ("sk-flag", "sk-env")
    assert state.settings["cors_origins"] == ["http://localhost:3000"] and not state.settings["loopback_only"]
    assert state.max_upload_bytes == 2 * 2**20 and state.pool.max_loaded == 3
    assert "Warning" not in capsys.readouterr().err


def test_serve_warns_when_open_without_key(captured, capsys):
    assert run_cli("serve", "--host", "0.0.0.0") == 0
    assert "without an API key" in capsys.readouterr().err


def test_serve_rejects_bad_limits(captured):
    assert run_cli("serve", "--max-loaded-models", "0") == 2
    assert "app" not in captured


def test_serve_limits(captured):
    assert run_cli("serve", "--max-body-mb", "1", "--max-queue", "8", "--request-timeout", "7", "--read-timeout", "3",
                   "--shutdown-timeout", "2") == 0
    settings = captured["app"].state.tunelab.settings
    assert settings["max_body_bytes"] == 2**20 and settings["max_queue"] == 8
    assert settings["request_timeout_s"] == 7 and settings["read_timeout_s"] == 3
    assert captured["timeout_graceful_shutdown"] == 2 and captured["timeout_keep_alive"] == 5
    assert captured["http"].header_timeout_s == 3  # headers get the read timeout, at most 10 s
    assert captured["h11_max_incomplete_event_size"] == 64 * 1024
    for bad in (["--max-queue", "0"], ["--max-body-mb", "0"], ["--request-timeout", "0"]):
        captured.clear()
        assert run_cli("serve", *bad) == 2 and "app" not in captured


def test_serve_on_a_port_in_use_says_so_before_starting(monkeypatch, capsys):
    """A taken port gave uvicorn's start-up log, an `[Errno 98]` line among INFO lines and exit 3 (the
    code for "not found"), after the banner announcing the server; now one error naming the port and
    the fix, exit 2, and nothing started."""
    import socket

    def never(*args, **kwargs):
        raise AssertionError("uvicorn started")

    monkeypatch.setattr("uvicorn.run", never)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run_cli("serve", "--port", port) == 2
    err = capsys.readouterr().err
    assert f"Port {port} on 127.0.0.1 is already in use" in err and "--port 0 picks a free one" in err
    assert "tunelab API on" not in err and "Traceback" not in err
