-- Core tables of rokt-export: one row per run (job, account, window) and the high-water mark per
-- job and account. Unqualified names: they land in the configured schema (the connection's
-- search_path). Append-only: change these tables with a new migration, never by editing this file.

CREATE TABLE export_runs (
    id           bigserial   PRIMARY KEY,
    job          text        NOT NULL,
    account_id   text        NOT NULL,
    window_start date        NOT NULL,
    window_end   date        NOT NULL, -- inclusive last day
    trigger      text        NOT NULL, -- 'schedule' | 'run-now' | 'demo'
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    status       text        NOT NULL
        CHECK (status IN ('running', 'succeeded', 'failed', 'skipped')),
    rows_written bigint      NOT NULL DEFAULT 0,
    api_requests integer     NOT NULL DEFAULT 0,
    error        text
);

-- `status`: the latest run per job.
CREATE INDEX export_runs_job_started_at ON export_runs (job, started_at DESC, id DESC);
-- `fail_stale_runs` and "is anything running": few rows, so a small partial index.
CREATE INDEX export_runs_running ON export_runs (job) WHERE status = 'running';
-- `status`: the last success per job.
CREATE INDEX export_runs_job_status_finished_at ON export_runs (job, status, finished_at);

CREATE TABLE export_state (
    job             text        NOT NULL,
    account_id      text        NOT NULL,
    high_water_date date        NOT NULL, -- last day fully loaded
    updated_at      timestamptz NOT NULL,
    PRIMARY KEY (job, account_id)
);
