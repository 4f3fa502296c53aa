#!/usr/bin/env bash
# The Python peers' packages as wheels, downloaded from PyPI on this machine for the peers'
# image, which installs them with `pip install --no-index` (a build container needs no index):
# every pin of peers/requirements.txt, for CPython 3.11 on x86_64 Linux (glibc 2.17 to 2.36, what
# Debian bookworm's python3 takes). Binary wheels only: a package that PyPI has only as source
# fails here, by name, rather than compiling in the image.
#
#   bash docker/wheels.sh     # into target/docker/wheels/, kept in ~/.cache/bakeoff/docker/wheels
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '  docker/wheels.sh: %s\n' "$*"; }

cache=${BAKEOFF_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bakeoff/docker}/wheels
mkdir -p "$cache"
platforms=()
for minor in $(seq 17 36); do
  platforms+=(--platform "manylinux_2_${minor}_x86_64")
done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64)

python=$(command -v python3.11 || command -v python3)
say "pip download -r peers/requirements.txt (CPython 3.11, x86_64 Linux wheels)"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps \
  --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
  "${platforms[@]}" --dest "$cache" -r peers/requirements.txt

# The build context gets exactly the wheels the requirements name (the cache may hold older ones).
rm -rf target/docker/wheels
mkdir -p target/docker/wheels
"$python" - "$cache" target/docker/wheels peers/requirements.txt <<'PY'
import os, re, shutil, sys
cache, destination, requirements = sys.argv[1:]
def canonical(name):
    return re.sub(r"[-_.]+", "_", name).lower()
pins = {}
for line in open(requirements):
    line = line.split("#", 1)[0].strip()
    if line:
        name, version = line.split("==")
        pins[canonical(re.sub(r"\[.*\]", "", name))] = version.strip()
found = set()
for wheel in sorted(os.listdir(cache)):
    name, version = wheel.split("-")[:2]
    if pins.get(canonical(name)) == version:
        shutil.copy2(os.path.join(cache, wheel), destination)
        found.add(canonical(name))
missing = sorted(set(pins) - found)
if missing:
    sys.exit(f"docker/wheels.sh: no wheel for {', '.join(missing)}")
PY
say "$(ls target/docker/wheels | wc -l) wheels in target/docker/wheels"
