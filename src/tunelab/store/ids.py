"""Id formats, OpenAI-style: `file-…`, `ftjob-…` (legacy `ft-…`), `ftevent-…`, `ftckpt-…`."""

from __future__ import annotations

import re
import secrets
import time

_ID = re.compile(r"^(file|ftjob|ft|ftevent|ftckpt)-[A-Za-z0-9]{8,64}$")
# Fine-tuned model ids, two forms: the legacy endpoint's <base>:ft-<org>[:<suffix>]-YYYY-MM-DD-HH-MM-SS and
# the current endpoint's ft:<base>:<org>:[<suffix>]:<id> (OpenAI's shape, e.g. ft:gpt-4o-mini:personal::9aBcD3fG;
# the empty suffix slot may also be left out when an id is given).
LEGACY_MODEL_ID = re.compile(r"^([A-Za-z0-9._/-]+):ft-[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)?-\d{4}(-\d{2}){5}$")
CURRENT_MODEL_ID = re.compile(r"^ft:([A-Za-z0-9._/-]+):[A-Za-z0-9_-]+(:[A-Za-z0-9_-]*)?:[A-Za-z0-9]{8}$")
MODEL_ID = re.compile(f"{LEGACY_MODEL_ID.pattern}|{CURRENT_MODEL_ID.pattern}")
CHECKPOINT_MODEL = re.compile(r"^(?P<owner>.+):ckpt-step-(?P<step>\d+)$")
"""A job's epoch checkpoint as a model id (OpenAI's `fine_tuned_model_checkpoint`)."""
LEGACY, CURRENT = "legacy", "current"
"""The two id styles: the endpoint that created a job decides which its model gets."""
SUFFIX_LIMITS = {LEGACY: 40, CURRENT: 64}
_ID_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_id(prefix: str) -> str:
    """24 hex digits: the creation time in microseconds (14), then 40 random bits. Lists order by
    created_at (whole seconds), then by id: with wholly random ids, the files or jobs made within one
    second (a training and a validation upload, a sweep's jobs) came in random order, so
    `list(limit=1)` was not the newest. The random part keeps ids distinct across machines."""
    return f"{prefix}-{time.time_ns() // 1000:014x}{secrets.token_hex(5)}"


def is_valid_id(value: str, prefix: str | None = None) -> bool:
    """Ids reach file paths, so only the strict format is ever accepted."""
    m = _ID.match(value or "")
    return bool(m) and (prefix is None or m.group(1) == prefix)


def normalize_job_id(value: str) -> str:
    """Accept the legacy `ft-…` spelling of a job id."""
    if value.startswith("ft-") and not value.startswith("ftjob-"):
        return "ftjob-" + value.removeprefix("ft-")
    return value


def model_dir_name(model_id: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", model_id)
    # "", "." and ".." name this folder or its parent: a model id given over HTTP (the dashboard's
    # report views) must not lead out of the folder it is joined to.
    return name if name.strip(".") else "_" * max(1, len(name))


def model_id_base(model_id: str) -> str:
    """The base name a fine-tuned id starts from: `ada` of `ada:ft-personal-…`, `gpt-4o-mini` of
    `ft:gpt-4o-mini:personal::9aBcD3fG`, either's of their checkpoints (`…:ckpt-step-9`); any other
    text up to its first colon."""
    checkpoint = CHECKPOINT_MODEL.match(model_id or "")
    if checkpoint:
        model_id = checkpoint["owner"]
    m = CURRENT_MODEL_ID.match(model_id or "")
    if m:
        return m.group(1)
    return (model_id or "").split(":", 1)[0]


def new_model_id(base: str, organization_id: str, suffix: str | None, style: str, when) -> str:
    """A fine-tuned model id in `style`: LEGACY `<base>:ft-<org>[:<suffix>]-<UTC time to the second>`,
    CURRENT `ft:<base>:<org>:<suffix or empty>:<8 random letters and digits>`."""
    if style == CURRENT:
        tail = "".join(secrets.choice(_ID_CHARS) for _ in range(8))
        return f"ft:{base}:{organization_id}:{suffix or ''}:{tail}"
    tag = f"ft-{organization_id}" + (f":{suffix}" if suffix else "")
    return f"{base}:{tag}-{when:%Y-%m-%d-%H-%M-%S}"


def normalize_suffix(suffix: str, style: str = LEGACY) -> str:
    """The suffix as it goes into a model id, normalised the way the legacy CLI did: lower case,
    every run of other characters than letters, digits, `-` and `_` becomes one dash, no dash at
    either end, at most 40 characters (64 on the current API). "" when nothing is left."""
    text = re.sub(r"[^a-z0-9_-]+", "-", suffix.strip().lower()).strip("-")
    return text[: SUFFIX_LIMITS.get(style, 40)].strip("-")
