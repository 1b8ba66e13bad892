-- Several workers on one store (issue 15). A running job names the worker that holds it; every
-- worker has a row it heartbeats. A job whose worker's heartbeat is older than the lease is put back
-- in the queue by any other worker (and resumed from its last checkpoint). Times are Unix seconds
-- from the database's clock on PostgreSQL, so workers on machines with skewed clocks agree.
ALTER TABLE jobs ADD COLUMN worker_id TEXT;

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    device TEXT,
    launcher TEXT,
    status TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    heartbeat_at DOUBLE PRECISION NOT NULL,
    stopped_at DOUBLE PRECISION,
    job_id TEXT
);
CREATE INDEX workers_status ON workers (status, heartbeat_at);

-- PostgreSQL's REAL is a 4-byte float: Unix seconds lose up to two minutes in it, more than a lease.
-- only: postgresql
ALTER TABLE jobs ALTER COLUMN heartbeat_at TYPE DOUBLE PRECISION;
-- only: postgresql
ALTER TABLE jobs ALTER COLUMN train_seconds TYPE DOUBLE PRECISION;
