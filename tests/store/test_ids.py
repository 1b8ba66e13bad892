"""Fine-tuned model ids in both of OpenAI's forms, and the suffix rule of the legacy CLI."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tunelab.store.ids import CURRENT, LEGACY, MODEL_ID, model_id_base, new_model_id, normalize_suffix


@pytest.mark.parametrize("given,legacy,current", [
    ("reviews", "reviews", "reviews"),
    ("My Model v2", "my-model-v2", "my-model-v2"),
    ("  stars!!  (chapter 4) ", "stars-chapter-4", "stars-chapter-4"),
    ("keep_under-score", "keep_under-score", "keep_under-score"),
    ("x" * 70, "x" * 40, "x" * 64),
    ("a" * 39 + " b", "a" * 39, "a" * 39 + "-b"),  # no dash left dangling at the cut
    ("!!!", "", ""),
])
def test_suffix_is_normalised_as_the_legacy_cli_did(given, legacy, current):
    assert normalize_suffix(given, LEGACY) == legacy
    assert normalize_suffix(given, CURRENT) == current


def test_both_id_forms():
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    legacy = new_model_id("ada", "personal", "stars", LEGACY, when)
    assert legacy == "ada:ft-personal:stars-2026-01-02-03-04-05"
    current = new_model_id("gpt-4o-mini-2024-07-18", "personal", None, CURRENT, when)
    assert current.startswith("ft:gpt-4o-mini-2024-07-18:personal::") and len(current.rsplit(":", 1)[1]) == 8
    assert new_model_id("gpt-4o-mini", "personal", "stars", CURRENT, when).count(":stars:") == 1
    for model_id in (legacy, current, "ft:davinci-002:personal:x:AbCd1234", "ft:gpt-4.1:acme:AbCd1234"):
        assert MODEL_ID.match(model_id), model_id
    for not_an_id in ("ft:gpt-4o-mini", "ada", "ft:gpt-4o:personal::short", "ada:ft-personal"):
        assert not MODEL_ID.match(not_an_id), not_an_id
    assert model_id_base(current) == "gpt-4o-mini-2024-07-18" and model_id_base(legacy) == "ada"
    assert model_id_base(current + ":ckpt-step-12") == "gpt-4o-mini-2024-07-18"
    assert model_id_base(legacy + ":ckpt-step-3") == "ada"
