#!/usr/bin/env bash
# Static checks of the Docker setup, for CI and by hand; no Docker engine is needed.
#
#  - compose.yaml is validated by Docker Compose itself (`config -q`), with every profile, by
#    the Compose v2 plugin when the docker client has it and by Debian's docker-compose
#    otherwise (installed with apt-get if missing);
#  - the shell scripts (bases.sh, e2e.sh, wheels.sh, the database's init script and entry
#    point, the images' health checks) parse.
#
# What the files must contain (a target and a service per server, equal limits, the servers'
# environment variables) is checked by `cargo test -p bakeoff --test it docker`.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '  docker/check.sh: %s\n' "$*"; }

compose=()
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose=(docker-compose)
elif command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  step "installing docker-compose"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Without recommends: the validator only, not a Docker engine.
  apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  compose=(docker-compose)
else
  echo "docker/check.sh: needs Docker Compose (docker compose, or apt-get install docker-compose)" >&2
  exit 1
fi
step "validating compose.yaml with $("${compose[@]}" version | head -n 1)"

# No variable of the caller's shell may hide a default of compose.yaml.
while IFS= read -r variable; do
  unset "$variable"
done < <(compgen -e | grep '^BAKEOFF_' || true)

profiles=(all bench peers bench-peers)
while IFS= read -r profile; do
  profiles+=("$profile")
done < <(sed -n 's/^ *profiles: \[\([a-z0-9-]*\), all\]$/\1/p' compose.yaml)
[ "${#profiles[@]}" -gt 4 ] || { echo "docker/check.sh: found no variant profiles in compose.yaml" >&2; exit 1; }

"${compose[@]}" -f compose.yaml config -q
for profile in "${profiles[@]}"; do
  "${compose[@]}" -f compose.yaml --profile "$profile" config -q
done
step "compose.yaml is valid (no profile, and profiles ${profiles[*]})"

for script in initdb/20-bakeoff.sh bases.sh e2e.sh wheels.sh postgres/docker-entrypoint.sh; do
  bash -n "$script"
done
if ! command -v python3 >/dev/null 2>&1; then
  step "the scripts parse (no python3: the health checks' syntax is not checked)"
  exit 0
fi
# The health checks are the exec-form JSON array after HEALTHCHECK ... CMD: bash -c SCRIPT.
for dockerfile in Dockerfile peers/Dockerfile; do
  healthcheck=$(python3 - "$dockerfile" <<'PY'
import json, sys
text = open(sys.argv[1]).read().replace("\\\n", " ")
line = next(l for l in text.splitlines() if l.startswith("HEALTHCHECK"))
program, flag, script = json.loads(line.split(" CMD ", 1)[1])
assert (program, flag) == ("bash", "-c"), (program, flag)
print(script)
PY
  )
  bash -n -c "$healthcheck"
done
step "the scripts and the health checks parse"
