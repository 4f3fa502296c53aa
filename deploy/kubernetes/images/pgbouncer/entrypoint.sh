#!/usr/bin/env bash
# Writes pgbouncer.ini and its userlist from the environment, then runs PgBouncer in the
# foreground. The settings are the local runs' (bench/src/harness/pooler.rs) but for the listen
# address and the client authentication: clients of the namespace are trusted, and PgBouncer
# logs in to the database with the role and password of UPSTREAM_URL.
#
#   UPSTREAM_URL       postgres://ROLE:PASSWORD@HOST[:PORT]/DATABASE (required; a password
#                      with URL escapes is not decoded)
#   POOL_MODE          session (default) or transaction
#   DEFAULT_POOL_SIZE  server connections per database and role (default 64)
#   MAX_CLIENT_CONN    client connections (default 2000)
#   SERVER_TLS_SSLMODE TLS to the database (default prefer: used where the database offers it,
#                      as a managed one does)
set -euo pipefail

pattern='^postgres(ql)?://([^:@/]+)(:([^@/]*))?@([^:/]+)(:([0-9]+))?/([^?]+)'
if [[ ! ${UPSTREAM_URL:?UPSTREAM_URL must be set} =~ $pattern ]]; then
  echo "pgbouncer: UPSTREAM_URL is not postgres://ROLE:PASSWORD@HOST[:PORT]/DATABASE" >&2
  exit 2
fi
role=${BASH_REMATCH[2]}
password=${BASH_REMATCH[4]}
host=${BASH_REMATCH[5]}
port=${BASH_REMATCH[7]:-5432}
database=${BASH_REMATCH[8]}

directory=$(mktemp -d /tmp/pgbouncer.XXXXXX)
printf '"%s" "%s"\n' "$role" "${password//\"/\"\"}" > "$directory/userlist.txt"
cat > "$directory/pgbouncer.ini" <<INI
[databases]
$database = host=$host port=$port dbname=$database
[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_type = trust
auth_file = $directory/userlist.txt
pool_mode = ${POOL_MODE:-session}
default_pool_size = ${DEFAULT_POOL_SIZE:-64}
max_client_conn = ${MAX_CLIENT_CONN:-2000}
server_tls_sslmode = ${SERVER_TLS_SSLMODE:-prefer}
; drivers send these at startup; PgBouncer would refuse the connection
ignore_startup_parameters = extra_float_digits,options
log_connections = 0
log_disconnections = 0
log_pooler_errors = 1
INI
exec /usr/sbin/pgbouncer "$directory/pgbouncer.ini"
