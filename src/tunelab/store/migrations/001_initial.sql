-- Portable SQL (SQLite and PostgreSQL): TEXT ids, INTEGER/REAL numbers, JSON kept as TEXT.
CREATE TABLE files (
    id TEXT PRIMARY KEY,
    filename TEXT NOT NULL,
    purpose TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    path TEXT NOT NULL,
    n_rows INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    status TEXT NOT NULL,
    model TEXT NOT NULL,
    base_model TEXT NOT NULL,
    parent_model TEXT,
    method TEXT NOT NULL,
    training_file TEXT NOT NULL,
    validation_file TEXT,
    hyperparams TEXT NOT NULL,
    options TEXT NOT NULL,
    organization_id TEXT NOT NULL,
    suffix TEXT,
    seed INTEGER NOT NULL,
    fine_tuned_model TEXT,
    result_file TEXT,
    error TEXT,
    trained_tokens INTEGER,
    trained_examples INTEGER,
    train_seconds REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker_pid INTEGER,
    heartbeat_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX jobs_status ON jobs (status, created_at);

CREATE TABLE job_events (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT
);
CREATE UNIQUE INDEX job_events_seq ON job_events (job_id, seq);

CREATE TABLE checkpoints (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    path TEXT NOT NULL,
    metrics TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX checkpoints_job ON checkpoints (job_id, step);

CREATE TABLE models (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL,
    owned_by TEXT NOT NULL,
    base_model TEXT NOT NULL,
    parent_id TEXT,
    job_id TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    labels TEXT,
    cumulative_epochs INTEGER NOT NULL,
    meta TEXT NOT NULL
);
