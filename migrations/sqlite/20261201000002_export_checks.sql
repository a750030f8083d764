-- See migrations/postgres/20261201000002_export_checks.sql. Dates are TEXT 'YYYY-MM-DD',
-- timestamps TEXT in RFC 3339 (UTC), numbers NUMERIC affinity, booleans 0/1.

CREATE TABLE export_checks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job         TEXT    NOT NULL,
    account_id  TEXT    NOT NULL,
    date        TEXT    NOT NULL,
    metric      TEXT    NOT NULL,
    table_value NUMERIC NOT NULL,
    api_value   NUMERIC NOT NULL,
    table_rows  INTEGER NOT NULL,
    matches     INTEGER NOT NULL,
    trigger     TEXT    NOT NULL,
    checked_at  TEXT    NOT NULL
);

CREATE INDEX export_checks_job_checked_at ON export_checks (job, checked_at DESC);
CREATE INDEX export_checks_job_account_date ON export_checks (job, account_id, date);
