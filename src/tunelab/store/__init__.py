"""The store: a SQL registry (SQLite by default, any SQLAlchemy engine) plus an artifacts folder."""

from tunelab.store.store import Store
from tunelab.store.records import CheckpointRecord, EventRecord, FileRecord, JobRecord, ModelRecord

__all__ = ["Store", "FileRecord", "JobRecord", "ModelRecord", "EventRecord", "CheckpointRecord"]
