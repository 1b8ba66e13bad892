"""Numbered schema migrations (`migrations/NNN_name.sql`), each applied once and recorded."""

from __future__ import annotations

import re
import time
from importlib import resources

from sqlalchemy import Engine, text

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


def available() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("tunelab.store").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(engine: Engine) -> list[int]:
    """Apply pending migrations in order; returns the versions applied now."""
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        ))
    applied_now = []
    for version, name, sql in available():
        with engine.begin() as conn:
            done = conn.execute(text("SELECT 1 FROM schema_migrations WHERE version = :v"), {"v": version}).first()
            if done:
                continue
            for statement in (s.strip() for s in _strip_comments(sql).split(";")):
                if statement:
                    conn.execute(text(statement))
            conn.execute(
                text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :t)"),
                {"v": version, "n": name, "t": int(time.time())},
            )
            applied_now.append(version)
    return applied_now


def _strip_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
