-- Jobs created within the same second were claimed in random-id order. A sub-second enqueue time
-- keeps the queue first in, first out. DOUBLE PRECISION, not REAL: PostgreSQL's REAL is 4 bytes.
ALTER TABLE jobs ADD COLUMN enqueued_at DOUBLE PRECISION;
UPDATE jobs SET enqueued_at = created_at WHERE enqueued_at IS NULL;
