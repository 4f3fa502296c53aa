#!/usr/bin/env bash
# The entry point of bakeoff-local/postgres:15: the part of the official image's entry point that
# compose.yaml relies on. On an empty PGDATA: initdb with POSTGRES_USER and POSTGRES_PASSWORD,
# password logins over TCP, POSTGRES_DB created, then every /docker-entrypoint-initdb.d/ file in
# name order (*.sql through psql, *.sh run, or sourced when not executable) against a server that
# listens on its Unix socket only; then PostgreSQL in the foreground with the given arguments.
set -euo pipefail

if [ "${1:-}" != postgres ]; then
  exec "$@"
fi
shift

: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  password_file=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
  initdb --username="$POSTGRES_USER" --pwfile="$password_file" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  rm -f "$password_file"
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  # Every interface, as the official image: the other containers connect over the network.
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # The arguments apply during the init scripts too (shared_preload_libraries, for one).
  pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' $(printf '%q ' "$@")" start >/dev/null
  psql=(psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password)
  if [ "$POSTGRES_DB" != postgres ]; then
    "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >/dev/null
  fi
  for file in /docker-entrypoint-initdb.d/*; do
    [ -e "$file" ] || continue
    echo "docker-entrypoint.sh: running $file"
    case "$file" in
      *.sql) "${psql[@]}" --dbname "$POSTGRES_DB" -f "$file" >/dev/null ;;
      *.sh) if [ -x "$file" ]; then "$file"; else . "$file"; fi ;;
      *) echo "docker-entrypoint.sh: ignoring $file" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "docker-entrypoint.sh: the database is ready"
fi

exec postgres "$@"
