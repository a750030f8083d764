-- A read-only role for BI tools (Metabase, Superset, Looker, Grafana) on the tables rokt-export
-- writes. Run it with psql in the database rokt-export writes to, after `rokt-export migrate`
-- created the schema, either as a superuser, naming the role rokt-export connects as (the owner of
-- its tables, whose future tables become readable through its default privileges):
--
--   psql -U postgres -d analytics -v owner=rokt_export -v reader_password='a long random password' \
--     -f deploy/sql/rokt_reader.sql
--
-- or as that role itself when it has CREATEROLE (then -v owner= is not needed):
--
--   psql "$DATABASE_URL" -v reader_password='a long random password' -f deploy/sql/rokt_reader.sql
--
-- Safe to run again (it resets the password). It assumes the default schema "rokt"
-- ([database] schema in jobs.toml); edit it here if you changed it.

\set ON_ERROR_STOP on
\if :{?reader_password}
\else
  DO $$ BEGIN RAISE EXCEPTION 'pass the password of rokt_reader with: psql -v reader_password=... -f rokt_reader.sql'; END $$;
\endif
\if :{?owner}
\else
  -- The role that creates the job tables: by default, whoever runs this script.
  SELECT current_user AS owner \gset
\endif

-- The login role, created once (not a superuser, cannot create databases or roles).
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rokt_reader') AS create_reader \gset
\if :create_reader
  CREATE ROLE rokt_reader LOGIN NOCREATEDB NOCREATEROLE;
\endif
ALTER ROLE rokt_reader WITH LOGIN PASSWORD :'reader_password';
-- Defaults for its sessions: read-only transactions, a bound on a runaway dashboard query, and the
-- schema first so that `SELECT * FROM campaign_daily` works.
ALTER ROLE rokt_reader SET default_transaction_read_only = on;
ALTER ROLE rokt_reader SET statement_timeout = '5min';
ALTER ROLE rokt_reader SET search_path = rokt, public;

-- CONNECT (PUBLIC has it by default; granted explicitly where this role may grant it).
SELECT has_database_privilege(current_database(), 'CONNECT WITH GRANT OPTION') AS can_grant_connect \gset
\if :can_grant_connect
  GRANT CONNECT ON DATABASE :"DBNAME" TO rokt_reader;
\endif
GRANT USAGE ON SCHEMA rokt TO rokt_reader;
-- Every table that exists now: export_runs, export_state and one per job.
GRANT SELECT ON ALL TABLES IN SCHEMA rokt TO rokt_reader;
-- And every table the owner creates later (a new job adds a table on its first run).
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA rokt GRANT SELECT ON TABLES TO rokt_reader;
