"""Id formats, OpenAI-style: `file-…`, `ftjob-…` (legacy `ft-…`), `ftevent-…`, `ftckpt-…`."""

from __future__ import annotations

import re
import secrets

_ID = re.compile(r"^(file|ftjob|ft|ftevent|ftckpt)-[A-Za-z0-9]{8,64}$")
# Fine-tuned model ids: <base>:ft-<org>[:<suffix>]-YYYY-MM-DD-HH-MM-SS
MODEL_ID = re.compile(r"^[A-Za-z0-9._/-]+:ft-[A-Za-z0-9_-]+(:[A-Za-z0-9_-]+)?-\d{4}(-\d{2}){5}$")


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


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
    return re.sub(r"[^A-Za-z0-9._-]", "_", model_id)
