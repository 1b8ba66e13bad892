-- The prediction log (issue 12): one row per prompt a fine-tuned model answered through
-- `tunelab serve`, and the labels people gave afterwards in a table of their own, so that a
-- correction never overwrites what the model said. Portable SQL (SQLite and PostgreSQL):
-- DOUBLE PRECISION for times and probabilities; JSON kept as TEXT; no column named `user`
-- (a reserved word in PostgreSQL), hence end_user. Few indexes: every served answer inserts a row.
CREATE TABLE prediction_log (
    response_id TEXT NOT NULL,
    prompt_index INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    api_key_id TEXT,
    end_user TEXT,
    metadata TEXT,
    prompt TEXT,
    prompt_sha256 TEXT,
    prompt_chars INTEGER,
    prompt_tokens INTEGER,
    empty_prompt INTEGER,
    non_text INTEGER,
    prediction TEXT,
    label_probs TEXT,
    top1_prob DOUBLE PRECISION,
    margin DOUBLE PRECISION,
    latency_ms DOUBLE PRECISION,
    PRIMARY KEY (response_id, prompt_index)
);
CREATE INDEX prediction_log_model_time ON prediction_log (model, created_at);

CREATE TABLE prediction_feedback (
    id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    model TEXT NOT NULL,
    response_id TEXT,
    prompt_index INTEGER,
    prompt TEXT,
    label TEXT NOT NULL,
    source TEXT NOT NULL,
    api_key_id TEXT,
    end_user TEXT,
    metadata TEXT
);
CREATE INDEX prediction_feedback_model_time ON prediction_feedback (model, created_at);
CREATE INDEX prediction_feedback_response ON prediction_feedback (response_id, prompt_index);
