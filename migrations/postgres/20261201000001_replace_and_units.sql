-- A window's load replaces the account's days: rows the answer no longer has are deleted and
-- counted, and what the run noticed about the answer (rows skipped, an empty answer whose days
-- were kept) is recorded with it. Each account's report zone and currency are remembered with
-- its state, so a run that would mix two zones or currencies in one table is refused; a state
-- row may now exist before the account has a fully loaded day.

ALTER TABLE export_runs
    ADD COLUMN rows_deleted bigint NOT NULL DEFAULT 0,
    ADD COLUMN warnings     text;

ALTER TABLE export_state
    ALTER COLUMN high_water_date DROP NOT NULL,
    ADD COLUMN timezone text,
    ADD COLUMN currency text;
