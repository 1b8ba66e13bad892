"""docs/openai-compatibility.md cannot drift from the code: its sections are the app's routes, its
parameters are the pinned openai client's (plus tunelab's extensions), what it calls same, accepted
or extension is a parameter the route takes, and what it calls refused is refused with a 400 naming
it when sent through the client."""

from __future__ import annotations

import re
from typing import get_type_hints

import openai
import pytest

from tests.conftest import REPO_ROOT
from tests.server.conftest import PROMPT

DOC = REPO_ROOT / "docs" / "openai-compatibility.md"
SUPPORT = {"same", "accepted", "extension", "refused"}


def _params(module: str, *names: str) -> set[str]:
    import importlib

    mod = importlib.import_module(module)
    out: set[str] = set()
    for name in names:
        out |= set(get_type_hints(getattr(mod, name)))
    return out


# The pinned client's parameters of each call (streaming variants add `stream`).
CLIENT = {
    ("POST", "/v1/files"): _params("openai.types.file_create_params", "FileCreateParams"),
    ("GET", "/v1/files"): _params("openai.types.file_list_params", "FileListParams"),
    ("POST", "/v1/fine_tuning/jobs"): _params("openai.types.fine_tuning.job_create_params", "JobCreateParams"),
    ("GET", "/v1/fine_tuning/jobs"): _params("openai.types.fine_tuning.job_list_params", "JobListParams"),
    ("GET", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/events"):
        _params("openai.types.fine_tuning.job_list_events_params", "JobListEventsParams"),
    ("GET", "/v1/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"):
        _params("openai.types.fine_tuning.jobs.checkpoint_list_params", "CheckpointListParams"),
    ("POST", "/v1/completions"): _params("openai.types.completion_create_params",
                                         "CompletionCreateParamsNonStreaming", "CompletionCreateParamsStreaming"),
    ("POST", "/v1/chat/completions"): _params("openai.types.chat.completion_create_params",
                                              "CompletionCreateParamsNonStreaming", "CompletionCreateParamsStreaming"),
}

# What to send for each refused parameter (a value the client accepts and tunelab must refuse).
REFUSED_SAMPLES = {
    "best_of": 3, "frequency_penalty": 1.0, "presence_penalty": 1.0, "logit_bias": {"5": -100}, "suffix": " end",
    "audio": {"voice": "alloy", "format": "wav"}, "function_call": "auto",
    "functions": [{"name": "lookup", "parameters": {"type": "object"}}], "modalities": ["text", "audio"],
    "moderation": {"model": "omni-moderation-latest"}, "prediction": {"type": "content", "content": "4"},
    "prompt_cache_options": {"ttl": "24h"}, "prompt_cache_retention": "24h", "reasoning_effort": "low",
    "tools": [{"type": "function", "function": {"name": "lookup"}}], "verbosity": "low", "web_search_options": {},
    "integrations": [{"type": "wandb", "wandb": {"project": "reviews"}}],
}


def parse_doc() -> dict[tuple[str, str], dict[str, str]]:
    """{(method, path): {parameter: support}} from the "### METHOD /path" sections and their tables."""
    sections: dict[tuple[str, str], dict[str, str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^### (GET|POST|DELETE) (/v1/\S+)$", line)
        if heading:
            current = sections.setdefault((heading[1], heading[2]), {})
            continue
        row = re.match(r"^\| `([^`]+)` \| (\w+) \|(.*)\|$", line)
        if row and current is not None:
            assert row[2] in SUPPORT, f"{row[1]}: support {row[2]!r} is not one of {sorted(SUPPORT)}"
            assert row[1] not in current, f"{row[1]} is listed twice"
            if row[2] == "refused":
                assert row[3].strip(), f"{row[1]} is refused without saying why"
            current[row[1]] = row[2]
    return sections


@pytest.fixture(scope="module")
def doc():
    return parse_doc()


@pytest.fixture(scope="module")
def spec():
    from tunelab.server import create_app
    from tunelab.store import Store

    import tempfile

    with tempfile.TemporaryDirectory() as home:
        return create_app(Store(home=home), loader=lambda *a, **k: None).openapi()


def _operations(spec):
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            yield method.upper(), path, op


def _taken(spec, op) -> set[str]:
    """The parameters an operation takes: query parameters, JSON body fields, form fields (the
    client sends expires_after as expires_after[anchor] and expires_after[seconds])."""
    names = {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
    for kind, content in op.get("requestBody", {}).get("content", {}).items():
        schema = content["schema"]
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        names |= {re.sub(r"\[.*\]$", "", name) for name in schema.get("properties", {})}
    return names


def test_every_route_has_a_section(doc, spec):
    routes = {(m, p) for m, p, _ in _operations(spec)}
    assert routes - set(doc) == set(), "routes missing from docs/openai-compatibility.md"
    assert set(doc) - routes == set(), "sections for routes the app does not serve"


def test_each_section_lists_the_clients_parameters(doc):
    for key, client_params in CLIENT.items():
        documented = doc[key]
        extensions = {p for p, s in documented.items() if s == "extension"}
        assert set(documented) - extensions == client_params, key
        assert not extensions & client_params, f"{key}: the client's own parameters are not extensions"


def test_what_is_supported_is_a_parameter_of_the_route(doc, spec):
    ops = {(m, p): op for m, p, op in _operations(spec)}
    for key, params in doc.items():
        taken = _taken(spec, ops[key])
        if key == ("GET", "/v1/fine_tuning/jobs"):
            taken.add("metadata")  # metadata[k]=v is read from the raw query (a deep object)
        supported = {p for p, s in params.items() if s != "refused"}
        assert supported <= taken, f"{key}: documented as supported but not taken: {supported - taken}"
        # A parameter the route takes is documented, so a new field cannot go unlisted.
        assert taken <= set(params), f"{key}: parameters missing from the table: {taken - set(params)}"


def _send(client, models, key, name, value):
    if key == ("POST", "/v1/completions"):
        kwargs = {"n": 1} if name == "best_of" else {}
        return client.completions.create(model=models["lm"], prompt=PROMPT, max_tokens=1, **kwargs,
                                         extra_body={name: value})
    if key == ("POST", "/v1/chat/completions"):
        return client.chat.completions.create(model=models["lm-labels"], messages=[{"role": "user", "content": "hi"}],
                                              extra_body={name: value})
    if key == ("POST", "/v1/fine_tuning/jobs"):
        return client.fine_tuning.jobs.create(model="ada", training_file="file-0123456789abcdef01234567",
                                              extra_body={name: value})
    raise AssertionError(f"no way to send a refused parameter of {key}: add one to _send")


def test_what_is_refused_gets_a_400_naming_it(doc, client, models):
    for key, params in doc.items():
        for name in sorted(p for p, s in params.items() if s == "refused"):
            assert name in REFUSED_SAMPLES, f"add a sample value for the refused parameter {name}"
            with pytest.raises(openai.BadRequestError) as excinfo:
                _send(client, models, key, name, REFUSED_SAMPLES[name])
            assert excinfo.value.param == name, (key, name, excinfo.value.message)
            # with the reason, not as a name OpenAI does not know (QA: reasoning_effort, audio, ...)
            assert "Unrecognized request argument" not in excinfo.value.message, (key, name)
