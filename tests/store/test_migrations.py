"""Schema migrations: a fresh database gets every migration; a database left at any earlier version
(every prefix of src/tunelab/store/migrations/*.sql) migrates to head with its rows intact and ends
up with the same schema as a fresh one."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text

from tunelab.store import Store
from tunelab.store import migrations as migrations_mod

ALL = migrations_mod.available()
HEAD = [version for version, _, _ in ALL]


def engine_at(path, versions: int):
    """An engine on a database at the version of the first `versions` migration files."""
    engine = create_engine(f"sqlite:///{path}", future=True)
    original = migrations_mod.available
    try:
        migrations_mod.available = lambda: original()[:versions]
        applied = migrations_mod.migrate(engine)
    finally:
        migrations_mod.available = original
    assert applied == HEAD[:versions]
    return engine


def schema(engine) -> dict[str, dict[str, str]]:
    """{table: {column: declared type}}, plus the indexes, for comparing two databases."""
    insp = inspect(engine)
    out = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {c["name"]: str(c["type"]) for c in insp.get_columns(table)}
        out[table]["__indexes__"] = sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                                           for i in insp.get_indexes(table))
    return out


def applied_versions(engine) -> list[int]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version FROM schema_migrations ORDER BY version"))]


def value_for(table: str, column: dict, marker: str):
    kind = str(column["type"]).upper()
    if "INT" in kind:
        return 7
    if "REAL" in kind or "FLOAT" in kind or "DOUBLE" in kind:
        return 1.5
    return f'"{marker}:{table}.{column["name"]}"'  # valid JSON too, for the JSON-as-TEXT columns


def write_one_row_per_table(engine, marker: str) -> dict[str, dict]:
    """Insert one row into every table but schema_migrations, whatever the columns are at this version."""
    rows = {}
    insp = inspect(engine)
    with engine.begin() as conn:
        for table in insp.get_table_names():
            if table == "schema_migrations":
                continue
            values = {c["name"]: value_for(table, c, marker) for c in insp.get_columns(table)}
            cols = ", ".join(values)
            conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':' + k for k in values)})"), values)
            rows[table] = values
    return rows


def test_there_is_at_least_one_numbered_migration():
    assert HEAD and HEAD[0] == 1
    assert HEAD == list(range(1, len(HEAD) + 1)), "migration numbers must have no gaps"
    names = [name for _, name, _ in ALL]
    assert len(set(names)) == len(names)


def test_empty_database_gets_every_migration(tmp_path):
    store = Store(home=tmp_path / "home")
    assert applied_versions(store.engine) == HEAD
    tables = set(inspect(store.engine).get_table_names())
    assert {"files", "jobs", "job_events", "checkpoints", "models", "schema_migrations"} <= tables
    assert migrations_mod.migrate(store.engine) == []  # idempotent: nothing left to apply
    Store(home=tmp_path / "home")  # opening it again migrates nothing and does not fail
    assert applied_versions(store.engine) == HEAD


@pytest.mark.parametrize("k", range(0, len(HEAD) + 1), ids=lambda k: f"from-version-{k}")
def test_database_at_every_earlier_version_migrates_to_head(tmp_path, k):
    db = tmp_path / "old" / "tunelab.db"
    db.parent.mkdir()
    old = engine_at(db, k)
    assert applied_versions(old) == HEAD[:k]
    rows = write_one_row_per_table(old, f"v{k}")
    assert bool(rows) == (k > 0)
    old.dispose()

    store = Store(home=db.parent)  # opening the store migrates to head
    assert applied_versions(store.engine) == HEAD
    fresh = Store(home=tmp_path / "fresh")
    assert schema(store.engine) == schema(fresh.engine)
    with store.engine.connect() as conn:
        for table, values in rows.items():
            where = " AND ".join(f"{c} = :{c}" for c in values)
            assert conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE {where}"), values).scalar_one() == 1, table


def test_rows_written_at_head_are_readable_through_the_store(tmp_path):
    """The generic rows above are raw SQL; this one goes through the API after reopening."""
    src = tmp_path / "data.jsonl"
    src.write_text('{"prompt": "a", "completion": " 1"}\n')
    store = Store(home=tmp_path / "home")
    record = store.add_file(src, n_rows=1)
    store.engine.dispose()
    again = Store(home=tmp_path / "home")
    assert again.get_file(record.id) == record


def test_a_database_a_newer_tunelab_migrated_is_refused_untouched(tmp_path):
    """An older tunelab (a machine not yet upgraded) must not write into a newer schema it does not know."""
    from tunelab.errors import TunelabError

    store = Store(home=tmp_path / "home")
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, 'future', 0)"),
                     {"v": HEAD[-1] + 1})
    store.engine.dispose()
    with pytest.raises(migrations_mod.SchemaTooNewError) as caught:
        Store(home=tmp_path / "home")
    assert isinstance(caught.value, TunelabError)
    assert f"schema version {HEAD[-1] + 1}, newer than this tunelab" in caught.value.message
    assert str(tmp_path / "home" / "tunelab.db") in caught.value.message and "Upgrade tunelab" in caught.value.hint
    assert applied_versions(store.engine) == HEAD + [HEAD[-1] + 1]
