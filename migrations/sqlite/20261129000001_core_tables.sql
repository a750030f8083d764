-- Core tables of rokt-export (SQLite flavour of migrations/postgres). Dates are TEXT 'YYYY-MM-DD',
-- timestamps TEXT in RFC 3339 (UTC), so they sort as text. Append-only.

CREATE TABLE export_runs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    job          TEXT    NOT NULL,
    account_id   TEXT    NOT NULL,
    window_start TEXT    NOT NULL,
    window_end   TEXT    NOT NULL, -- inclusive last day
    trigger      TEXT    NOT NULL, -- 'schedule' | 'run-now' | 'demo'
    started_at   TEXT    NOT NULL,
    finished_at  TEXT,
    status       TEXT    NOT NULL
        CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    rows_written INTEGER NOT NULL DEFAULT 0,
    api_requests INTEGER NOT NULL DEFAULT 0,
    error        TEXT
);

CREATE INDEX export_runs_job_started_at ON export_runs (job, started_at DESC, id DESC);
CREATE INDEX export_runs_running ON export_runs (job) WHERE status = 'running';
-- `status`: the last success per job.
CREATE INDEX export_runs_job_status_finished_at ON export_runs (job, status, finished_at);

CREATE TABLE export_state (
    job             TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    high_water_date TEXT NOT NULL, -- last day fully loaded
    updated_at      TEXT NOT NULL,
    PRIMARY KEY (job, account_id)
);
