"""Numbered schema migrations (`migrations/NNN_name.sql`), each applied once and recorded.

A statement preceded by a line `-- only: postgresql` (or `sqlite`) runs on that database alone, for
the few changes portable SQL cannot say (SQLite has no ALTER COLUMN; PostgreSQL's REAL is 4 bytes)."""

from __future__ import annotations

import contextlib
import re
import time
from importlib import resources

from sqlalchemy import Engine, text

from tunelab.errors import TunelabError

_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_ONLY = re.compile(r"^--\s*only:\s*([a-z]+)\s*$")

MIGRATION_LOCK = 0x74756E656C6162  # "tunelab": the pg_advisory_lock key every tunelab process agrees on


class SchemaTooNewError(TunelabError):
    """The database was migrated by a newer tunelab: this one does not know its tables, and writing
    rows the newer schema does not expect would break the processes that use it."""

    def __init__(self, database_version: int, head: int, name: str = ""):
        self.database_version = database_version
        self.head = head
        super().__init__(f"The store's database {name + ' ' if name else ''}is at schema version {database_version}, newer than this tunelab "
                         f"{_version()} knows (version {head}): a newer tunelab migrated it.",
                         hint="Upgrade tunelab here to the version the other machines run (every machine that "
                              "shares a store must run the same tunelab version); nothing was changed.")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tunelab")
    except PackageNotFoundError:
        return "(not installed)"


def available() -> list[tuple[int, str, str]]:
    found = []
    for entry in resources.files("tunelab.store").joinpath("migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append((int(m.group(1)), m.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(engine: Engine) -> list[int]:
    """Apply pending migrations in order; returns the versions applied now.

    On PostgreSQL several workers may start at the same moment against a fresh database: a session
    advisory lock makes them take turns, so each migration runs once and the others find it recorded
    (without it, two concurrent `CREATE TABLE` race into a duplicate-key error on the catalog)."""
    if engine.dialect.name != "postgresql":
        return _apply(engine.begin, engine.dialect.name, _name(engine))
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
        conn.commit()
        try:
            @contextlib.contextmanager
            def begin():
                with conn.begin():
                    yield conn
            return _apply(begin, "postgresql", _name(engine))
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
            conn.commit()


def _name(engine: Engine) -> str:
    return engine.url.database if engine.dialect.name == "sqlite" else engine.url.render_as_string(hide_password=True)


def _apply(begin, dialect: str, name: str = "") -> list[int]:
    with begin() as conn:
        conn.execute(text(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)"
        ))
    known = available()
    with begin() as conn:
        newest = conn.execute(text("SELECT MAX(version) FROM schema_migrations")).scalar()
    if newest is not None and known and newest > known[-1][0]:
        raise SchemaTooNewError(newest, known[-1][0], name)
    applied_now = []
    for version, name, sql in known:
        with begin() as conn:
            done = conn.execute(text("SELECT 1 FROM schema_migrations WHERE version = :v"), {"v": version}).first()
            if done:
                continue
            for statement in statements(sql, dialect):
                conn.execute(text(statement))
            conn.execute(
                text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :t)"),
                {"v": version, "n": name, "t": int(time.time())},
            )
            applied_now.append(version)
    return applied_now


def statements(sql: str, dialect: str) -> list[str]:
    """The migration's statements for this database, comments removed (before splitting on `;`,
    which comments may contain)."""
    lines = []
    for line in sql.splitlines():
        stripped = line.strip()
        m = _ONLY.match(stripped)
        if m:
            lines.append(f"{_MARK}{m.group(1)}")
        elif not stripped.startswith("--"):
            lines.append(line)
    out = []
    for chunk in "\n".join(lines).split(";"):
        only = None
        body = []
        for line in chunk.splitlines():
            if line.startswith(_MARK):
                only = line[len(_MARK):]
            else:
                body.append(line)
        statement = "\n".join(body).strip()
        if statement and only in (None, dialect):
            out.append(statement)
    return out


_MARK = "\x00only:"
