-- See migrations/postgres/20261201000001_replace_and_units.sql. SQLite cannot drop a NOT NULL
-- constraint, so export_state is rebuilt (inside the migration's transaction).

ALTER TABLE export_runs ADD COLUMN rows_deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE export_runs ADD COLUMN warnings TEXT;

CREATE TABLE export_state_new (
    job             TEXT NOT NULL,
    account_id      TEXT NOT NULL,
    high_water_date TEXT,          -- last day fully loaded; NULL until there is one
    updated_at      TEXT NOT NULL,
    timezone        TEXT,          -- the report zone of the rows loaded
    currency        TEXT,          -- the report currency of the rows loaded
    PRIMARY KEY (job, account_id)
);
INSERT INTO export_state_new (job, account_id, high_water_date, updated_at)
    SELECT job, account_id, high_water_date, updated_at FROM export_state;
DROP TABLE export_state;
ALTER TABLE export_state_new RENAME TO export_state;
