#!/usr/bin/env bash
# The Docker setup run for real, on a machine with an engine and no registry: the local bases
# (docker/bases.sh), the images (from the binaries cargo built here), PostgreSQL, the seeder and
# every variant (`--profile all`), then the benchmark container against them by service name
# across the compose network, a short run (every variant, `types` and `contact`). It checks that
# the run wrote results/<timestamp>/ with every variant verified and measured, its container
# and limits found, and removes every container, network and volume of its compose project on
# success, failure and Ctrl-C alike.
#
#   bash docker/e2e.sh                      # debug binaries (what `cargo test` built)
#   BAKEOFF_PROFILE=release bash docker/e2e.sh
#   bash docker/e2e.sh --peers              # the Python peers too (`--profile peers`)
#
# Its compose project is bakeoff-e2e, never the project a user runs (bakeoff); its results go to
# target/docker/e2e-results/. BAKEOFF_E2E_DURATION sets the cell (default 2s).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '  docker/e2e.sh: %s\n' "$*"; }
die() { printf 'docker/e2e.sh: %s\n' "$*" >&2; exit 1; }

peers=false
case "${1:-}" in
  "") ;;
  --peers) peers=true ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument $1 (try --help)" ;;
esac

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"
if docker compose version >/dev/null 2>&1; then
  compose_tool=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  compose_tool=(docker-compose)
else
  die "needs Docker Compose (docker compose, or Debian's docker-compose)"
fi

started=$SECONDS
project=bakeoff-e2e
export BAKEOFF_PROFILE=${BAKEOFF_PROFILE:-debug}
profiles=(--profile all --profile bench)
if [ "$peers" = true ]; then
  profiles+=(--profile peers --profile bench-peers)
fi
compose() { "${compose_tool[@]}" --project-name "$project" -f docker/compose.yaml "$@"; }

# ---- Teardown, whatever happens from here ---------------------------------------------------

torn_down=false
teardown() {
  local status=$?
  [ "$torn_down" = true ] && return
  torn_down=true
  trap - EXIT INT TERM
  if [ "$status" -ne 0 ]; then
    say "failed (exit $status); the containers' last log lines:"
    compose "${profiles[@]}" logs --tail=20 2>&1 | sed 's/^/    /' || true
  fi
  say "tearing down the $project project (containers, networks, volumes)"
  compose "${profiles[@]}" --profile peers --profile bench-peers down --volumes --remove-orphans --timeout 15 \
    >/dev/null 2>&1 || true
  # Images that a rebuild untagged (the tagged ones stay: they are the next run's cache).
  docker image prune -f --filter label=org.bakeoff.image >/dev/null 2>&1 || true
  local left
  left=$(
    docker ps -aq --filter "label=com.docker.compose.project=$project"
    docker network ls -q --filter "label=com.docker.compose.project=$project"
    docker volume ls -q --filter "label=com.docker.compose.project=$project"
  )
  if [ -n "$left" ]; then
    printf 'docker/e2e.sh: left behind: %s\n' "$left" >&2
    [ "$status" -eq 0 ] && status=1
  fi
  say "done in $((SECONDS - started)) s (exit $status)"
  exit "$status"
}
trap teardown EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A project left over by a run that was killed (SIGKILL leaves no trap) goes first.
compose "${profiles[@]}" --profile peers --profile bench-peers down --volumes --remove-orphans \
  --timeout 5 >/dev/null 2>&1 || true

# ---- Bases, binaries, images ----------------------------------------------------------------

step_started=$SECONDS
bash docker/bases.sh
set -a
# shellcheck disable=SC1091
. target/docker/bases.env
set +a
say "bases ready in $((SECONDS - step_started)) s"

step_started=$SECONDS
cargo_profile=()
[ "$BAKEOFF_PROFILE" = release ] && cargo_profile=(--release)
cargo build --quiet --locked --workspace --bins "${cargo_profile[@]}"
say "binaries ($BAKEOFF_PROFILE) ready in $((SECONDS - step_started)) s"
if [ "$peers" = true ]; then
  bash docker/wheels.sh
fi

step_started=$SECONDS
compose "${profiles[@]}" build
say "images built in $((SECONDS - step_started)) s"

# ---- Up, measure, check ---------------------------------------------------------------------

step_started=$SECONDS
up_profiles=(--profile all)
[ "$peers" = true ] && up_profiles+=(--profile peers)
compose "${up_profiles[@]}" up -d
# The variants are the services of `profiles: [NAME, all]`, the peers those of `[peers]`.
variants=$(sed -n 's/^ *profiles: \[\([a-z0-9-]*\), all\]$/\1/p' docker/compose.yaml)
peer_services=""
if [ "$peers" = true ]; then
  peer_services=$(awk '/^  [a-z0-9-]+:$/ { name = substr($1, 1, length($1) - 1) }
    /^    profiles: \[peers\]$/ { print name }' docker/compose.yaml)
fi
services="$variants $peer_services"
[ -n "$variants" ] || die "found no variant services in docker/compose.yaml"
deadline=$((SECONDS + 120))
for service in $services; do
  container=$(compose "${up_profiles[@]}" ps -q "$service")
  [ -n "$container" ] || die "service $service has no container"
  until [ "$(docker inspect -f '{{.State.Health.Status}}' "$container")" = healthy ]; do
    [ "$(docker inspect -f '{{.State.Running}}' "$container")" = true ] || die "$service stopped"
    [ "$SECONDS" -lt "$deadline" ] || die "$service not healthy within 120 s"
    sleep 1
  done
done
say "every service healthy in $((SECONDS - step_started)) s: $(echo $services)"

results=target/docker/e2e-results
rm -rf "$results"
export BAKEOFF_UID=$(id -u) BAKEOFF_GID=$(id -g)
export BAKEOFF_SCENARIOS=types,contact BAKEOFF_DURATION=${BAKEOFF_E2E_DURATION:-2s}
export BAKEOFF_WARMUP=1s BAKEOFF_CONNECTIONS=16

# Runs one benchmark service into its own results folder and checks what it wrote: every one of
# the named servers verified, measured (types and contact, answers without errors) from its
# container, with its limits, and the engine's and database's containers found.
bench_and_check() {
  local service=$1
  shift
  local started_at=$SECONDS
  export BAKEOFF_RESULTS="$PWD/$results/$service"
  mkdir -p "$BAKEOFF_RESULTS"
  compose "${profiles[@]}" run --rm --no-deps "$service" 2>&1 | sed 's/^/    /'
  say "$service ran in $((SECONDS - started_at)) s"
  local run
  run=$(find "$BAKEOFF_RESULTS" -mindepth 1 -maxdepth 1 -type d | sort | tail -n 1)
  [ -n "$run" ] && [ -f "$run/results.json" ] && [ -f "$run/report.md" ] \
    || die "$service wrote no results/<timestamp>/ with results.json and report.md"
  python3 - "$run/results.json" "$@" <<'PY'
import json, sys

path, expected = sys.argv[1], sys.argv[2:]
results = json.load(open(path))
servers = {server["name"]: server for server in results["servers"]}
problems = []
for name in expected:
    server = servers.get(name)
    if server is None:
        problems.append(f"{name}: not in the results")
        continue
    if server.get("skipped"):
        problems.append(f"{name}: not measured: {server['skipped']}")
    if not server.get("verification", {}).get("passed"):
        problems.append(f"{name}: not verified")
    cells = server.get("cells", [])
    scenarios = sorted(cell["scenario"] for cell in cells)
    if scenarios != ["contact", "types"]:
        problems.append(f"{name}: measured {scenarios}, not contact and types")
    for cell in cells:
        run = cell["runs"][cell["summary"]["median_run"]]
        if run["ok"] == 0 or run["errors"]:
            problems.append(f"{name} {cell['scenario']}: {run['ok']} ok, errors {run['errors']}")
        if not (run.get("server") or {}).get("cpu_seconds"):
            problems.append(f"{name} {cell['scenario']}: no CPU time read from its cgroup")
    container = server.get("container")
    if not container or not container["limits"].get("cpus") or not container["limits"].get("memory_bytes"):
        problems.append(f"{name}: its container or limits were not found: {container}")
containers = results.get("containers") or {}
for side in ("engine", "database"):
    if not containers.get(side):
        problems.append(f"the {side}'s container was not found")
if problems:
    print("docker/e2e.sh: the results are not what they must be:", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"  docker/e2e.sh: {path}: {len(expected)} servers verified and measured from their containers")
PY
}

bench_and_check bench $variants
if [ "$peers" = true ]; then
  bench_and_check bench-peers $peer_services
fi
