"""A PostgreSQL database of its own for one test: created on the local server, dropped afterwards.

The server is `TUNELAB_TEST_POSTGRES` (a SQLAlchemy URL of a database to connect to for CREATE
DATABASE; default: postgres on 127.0.0.1:5432, then the local socket, as user postgres). Tests that
need it are skipped, with the reason, when no server answers.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

CANDIDATES = ("postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
              "postgresql+psycopg://postgres@/postgres?host=/var/run/postgresql",
              "postgresql+psycopg://root@127.0.0.1:5432/postgres")


def admin_url() -> str | None:
    """The first server URL that answers, or None."""
    try:
        import sqlalchemy as sa
        import psycopg  # noqa: F401 - the driver tunelab uses
    except ImportError:
        return None
    urls = [os.environ["TUNELAB_TEST_POSTGRES"]] if os.environ.get("TUNELAB_TEST_POSTGRES") else list(CANDIDATES)
    for url in urls:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return url
        except Exception:  # noqa: BLE001 - not this one; try the next
            continue
        finally:
            engine.dispose()
    return None


@contextlib.contextmanager
def fresh_database() -> Iterator[str]:
    """Yield the URL of a new, empty database; drop it afterwards (with every connection to it)."""
    import pytest
    import sqlalchemy as sa

    admin = admin_url()
    if admin is None:
        pytest.skip("no PostgreSQL server answers (set TUNELAB_TEST_POSTGRES to a server URL)")
    name = f"tunelab_test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
