-- The OpenFGA database and its four roles. Idempotent: every run converges on
-- the same state (and rotates the passwords to the current environment), so it
-- is safe to run twice, or again after `openfga migrate` has created tables.
--
-- Run by psql as the superuser (openfga-postgres.sh, or the official image's
-- /docker-entrypoint-initdb.d runner) after 00-openfga-env.sh has exported the
-- names and passwords; they are read with \getenv, never written to a file.
--
--   owner     NOLOGIN; owns the database, the public schema and every table.
--   migrator  LOGIN; member of owner, every session runs SET ROLE owner, so what
--             `openfga migrate` creates is owned by owner. NOINHERIT: with the
--             role reset it has no privileges of its own.
--   app       LOGIN; SELECT/INSERT/UPDATE/DELETE on the tables (`openfga run`).
--   readonly  LOGIN; SELECT only, read-only transactions (backups, reporting).
--   (none of them can use the monitoring schema, home of pg_stat_statements)

\set ON_ERROR_STOP on
-- On an error psql prints the message only, never the statement (which may
-- hold a password).
\set VERBOSITY terse
\set SHOW_CONTEXT never
\set QUIET on

\getenv db POSTGRES_OPENFGA_DB
\getenv owner POSTGRES_OWNER_ROLE
\getenv migrator POSTGRES_MIGRATOR_ROLE
\getenv app POSTGRES_APP_ROLE
\getenv readonly POSTGRES_READONLY_ROLE
\getenv migrator_password POSTGRES_MIGRATOR_PASSWORD
\getenv app_password POSTGRES_APP_PASSWORD
\getenv readonly_password POSTGRES_READONLY_PASSWORD

SELECT :{?db} AND :{?owner} AND :{?migrator} AND :{?app} AND :{?readonly}
   AND :{?migrator_password} AND :{?app_password} AND :{?readonly_password} AS env_ready \gset
\if :env_ready
\else
DO $$ BEGIN RAISE EXCEPTION
  'the OpenFGA names and passwords are not in the environment: 00-openfga-env.sh must be sourced first (it sets the defaults and reads the *_FILE variables)';
END $$;
\endif

-- Nothing this session sends may reach a log or pg_stat_statements: the
-- ALTER ROLE statements below carry the passwords in clear text.
SET log_statement = 'none';
SET log_min_duration_statement = -1;
SET log_min_error_statement = 'panic';
SET log_transaction_sample_rate = 0;
SET log_statement_sample_rate = 0;
SET pg_stat_statements.track = 'none';
SET pg_stat_statements.track_utility = off;
SET password_encryption = 'scram-sha-256';
-- A re-run is quiet ("already exists" notices); warnings still show.
SET client_min_messages = warning;

-- Roles: created when missing, then their attributes set every time.
SELECT format('CREATE ROLE %I', r) FROM unnest(ARRAY[:'owner', :'migrator', :'app', :'readonly']) AS r
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec
ALTER ROLE :"owner" NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT;
ALTER ROLE :"migrator" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT
  PASSWORD :'migrator_password';
ALTER ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
  PASSWORD :'app_password';
ALTER ROLE :"readonly" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS INHERIT
  PASSWORD :'readonly_password';
ALTER ROLE :"readonly" SET default_transaction_read_only = on;

-- The migrator acts as the owner (SET ROLE) without inheriting its rights.
SELECT current_setting('server_version_num')::int >= 160000 AS pg16 \gset
\if :pg16
GRANT :"owner" TO :"migrator" WITH INHERIT FALSE, SET TRUE;
\else
GRANT :"owner" TO :"migrator";
\endif

-- The database, owned by the owner; only the three login roles may connect.
SELECT format('CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0', :'db', :'owner', 'UTF8')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"owner";
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"db" TO :"migrator", :"app", :"readonly";
ALTER ROLE :"migrator" IN DATABASE :"db" SET role = :'owner';
-- Network roles have no business in the maintenance databases.
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT ON DATABASE template1 FROM PUBLIC;

\connect :"db"
SET log_statement = 'none';
SET log_min_error_statement = 'panic';
SET pg_stat_statements.track = 'none';
SET client_min_messages = warning;

-- pg_stat_statements gets a schema of its own, owned by the superuser, that
-- no OpenFGA role may use: its views list every role's statements with their
-- timings, and nothing there is the app's business. It must stay out of
-- public, where the grants on ALL TABLES below would reach its views. Earlier
-- versions of this script created it in public: a re-run moves it and takes
-- back what those grants gave. Monitoring is done as the superuser (local
-- socket), or by a role an operator grants USAGE on monitoring explicitly.
CREATE SCHEMA IF NOT EXISTS monitoring;
ALTER SCHEMA monitoring OWNER TO CURRENT_USER;
REVOKE ALL ON SCHEMA monitoring FROM PUBLIC;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA monitoring;
SELECT 'ALTER EXTENSION pg_stat_statements SET SCHEMA monitoring'
  FROM pg_extension WHERE extname = 'pg_stat_statements'
   AND extnamespace <> 'monitoring'::regnamespace \gexec
REVOKE ALL ON ALL TABLES IN SCHEMA monitoring FROM PUBLIC, :"owner", :"migrator", :"app", :"readonly";
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA monitoring FROM PUBLIC, :"owner", :"migrator", :"app", :"readonly";

-- The schema belongs to the owner (PostgreSQL 15+ already removed CREATE for
-- PUBLIC; this also covers a database restored from an older dump).
ALTER SCHEMA public OWNER TO :"owner";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app", :"readonly";

-- Tables and sequences the owner creates later (migrations) ...
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT USAGE, SELECT ON SEQUENCES TO :"app";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT ON TABLES TO :"readonly";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public
  GRANT SELECT ON SEQUENCES TO :"readonly";
-- ... and those that already exist (a re-run after migrations).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app";
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"readonly";
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO :"readonly";
