#!/usr/bin/env bash
# Run once by the postgres image's entrypoint when it creates the cluster, after 10-schema.sql
# (the repository's schema/schema.sql) has created the tables in $POSTGRES_DB.
#
# It adds what the local clusters of `bakeoff db up` and the tests also have: the
# pg_stat_statements extension (shared_preload_libraries is set on the command line in
# compose.yaml) and the login role the servers connect as, `bakeoff_app`, which may only read
# the contact tables, so that its statements are told apart from the seeder's and the
# benchmark's.
set -euo pipefail

psql --no-psqlrc -v ON_ERROR_STOP=1 \
    --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    -v app_password="${BAKEOFF_APP_PASSWORD:?BAKEOFF_APP_PASSWORD must be set}" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE ROLE bakeoff_app LOGIN PASSWORD :'app_password';
GRANT USAGE ON SCHEMA public TO bakeoff_app;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO bakeoff_app;
-- Tables the seeder might create later are readable too.
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO bakeoff_app;
SQL
