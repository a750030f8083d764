-- What `rokt-export verify` (and the daemon, for jobs with `verify = true`) found when it compared
-- a job table with the API's own totals: one row per job, account, day and additive metric
-- checked. Append-only history: every verification adds its rows, all with the same checked_at;
-- nothing here is updated or deleted by rokt-export.

CREATE TABLE export_checks (
    id          bigserial   PRIMARY KEY,
    job         text        NOT NULL,
    account_id  text        NOT NULL,
    date        date        NOT NULL, -- the report day, as the job table's `date`
    metric      text        NOT NULL, -- the metric's slug (the job table's column)
    table_value numeric     NOT NULL, -- sum of the column over the table's rows of the day (0: none)
    api_value   numeric     NOT NULL, -- the API's total for the day (0: the API had no row for it)
    table_rows  bigint      NOT NULL, -- rows the table held for the account and day
    matches     boolean     NOT NULL, -- table_value equals api_value at the API's precision
    trigger     text        NOT NULL, -- 'schedule' (after a daemon run) | 'verify' (the command)
    checked_at  timestamptz NOT NULL
);

-- `status` and dashboards: the latest verification per job.
CREATE INDEX export_checks_job_checked_at ON export_checks (job, checked_at DESC);
-- Joining a job table's days: the checks of one account and day.
CREATE INDEX export_checks_job_account_date ON export_checks (job, account_id, date);
