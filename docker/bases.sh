#!/usr/bin/env bash
# The base images of the Docker setup, made from Debian's packages on this machine, for an engine
# that reaches no container registry (nothing can be pulled: not rust:, debian: nor postgres:).
#
#   bash docker/bases.sh            # build what is missing or out of date, then stage the files
#   bash docker/bases.sh --rebuild  # build every base again
#
# It makes, under local names (the registry's images are never shadowed):
#   bakeoff-local/debian:RELEASE-slim  debootstrap --variant=minbase: what debian:RELEASE-slim
#                                      is, the runtime base of every server image and the tool's
#   bakeoff-local/python:RELEASE       the same with Debian's python3 and venv, for the peers
#   bakeoff-local/postgres:15          the same with Debian's PostgreSQL 15 (pg_stat_statements
#                                      and libpq included) and docker/postgres/'s entry point:
#                                      what compose's `postgres` service runs instead of
#                                      postgres:15
# and writes into target/docker/ (git ignores target/):
#   Dockerfile.host   docker/Dockerfile with its build section replaced by a copy of the binaries
#                     cargo built on this machine (why: see docker/Dockerfile)
#   bases.env         the variables that point compose at all of the above; `set -a;
#                     . target/docker/bases.env; set +a` before docker-compose
#
# What it caches between runs on one machine: the downloaded .deb files (debootstrap's and apt's,
# in $BAKEOFF_DOCKER_CACHE, by default ~/.cache/bakeoff/docker), and the images themselves: an
# image whose label org.bakeoff.recipe matches this script's recipe is kept. The bases follow
# the machine's own Debian mirror (the first Debian URI in /etc/apt) and take the release's
# updates and security fixes when they are built.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '  docker/bases.sh: %s\n' "$*"; }
die() { printf 'docker/bases.sh: %s\n' "$*" >&2; exit 1; }

rebuild=false
case "${1:-}" in
  "") ;;
  --rebuild) rebuild=true ;;
  -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument $1 (try --help)" ;;
esac

[ "$(id -u)" = 0 ] || die "debootstrap and chroot need root"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info)"

# The release the Dockerfile builds for, and the PostgreSQL major of the database image.
release=$(sed -n 's/^ARG DEBIAN_RELEASE=//p' docker/Dockerfile)
[ -n "$release" ] || die "docker/Dockerfile has no ARG DEBIAN_RELEASE"
postgres_major=15
prefix=bakeoff-local
runtime_image="$prefix/debian:$release-slim"
python_image="$prefix/python:$release"
postgres_base_image="$prefix/postgres-base:$postgres_major"
postgres_image="$prefix/postgres:$postgres_major"

cache=${BAKEOFF_DOCKER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bakeoff/docker}
mkdir -p "$cache/debootstrap" "$cache/apt"

# The machine's Debian mirror: deb822 `URIs:` or a one-line `deb URI release ...` entry.
mirror=$(
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
    | sed -n -e 's/^URIs: *\([^ ]*\/debian\/\{0,1\}\)$/\1/p' \
             -e 's/^deb  *\(\[[^]]*\] *\)\{0,1\}\([^ ]*\/debian\/\{0,1\}\) .*/\2/p' \
    | head -n 1 || true
)
mirror=${mirror:-http://deb.debian.org/debian}
security_mirror=${mirror%/debian*}/debian-security

# Anything that changes what an image holds changes its recipe, and so rebuilds it: the
# release, the mirror, its packages, the database image's files, and `make_version`, to be
# raised whenever make_minbase or import_image below change what they make.
make_version=1
runtime_packages=()
python_packages=(python3 python3-venv)
postgres_packages=("postgresql-$postgres_major")
recipe_of() {
  { echo "$make_version $release $mirror"; cat "$@"; } | sha256sum | cut -c1-16
}
runtime_recipe=$(recipe_of <(echo "${runtime_packages[*]}"))
python_recipe=$(recipe_of <(echo "${python_packages[*]}"))
postgres_recipe=$(recipe_of <(echo "${postgres_packages[*]}") docker/postgres/Dockerfile \
  docker/postgres/docker-entrypoint.sh)
postgres_base_recipe=$(recipe_of <(echo "${postgres_packages[*]}"))

# Whether image $1 exists, made by recipe $2.
has_recipe() {
  [ "$rebuild" = false ] && [ "$(docker image inspect -f '{{index .Config.Labels "org.bakeoff.recipe"}}' "$1" 2>/dev/null)" = "$2" ]
}

work=$(mktemp -d "${TMPDIR:-/tmp}/bakeoff-bases.XXXXXX")
mounted=()
cleanup() {
  local point
  for point in "${mounted[@]}"; do umount -l "$point" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command in a root file system with /proc and /dev, as apt's maintainer scripts expect.
in_root() {
  local root=$1
  shift
  if ! mountpoint -q "$root/proc"; then
    mount -t proc proc "$root/proc" && mounted+=("$root/proc")
    mount --rbind /dev "$root/dev" && mounted+=("$root/dev")
  fi
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 "$@"
}

release_root() {
  local root=$1
  for point in "$root/dev" "$root/proc"; do
    if mountpoint -q "$point"; then umount -l "$point"; fi
  done
}

# A minimal Debian: debootstrap's minbase, the release's updates and security fixes, apt's
# sources as debian:RELEASE-slim has them, and none of what slim leaves out (documentation,
# manual pages, translations, apt's lists and caches).
make_minbase() {
  local root=$work/minbase
  say "debootstrap --variant=minbase $release from $mirror"
  debootstrap --variant=minbase --cache-dir="$cache/debootstrap" "$release" "$root" "$mirror" \
    >"$work/debootstrap.log" 2>&1 || { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  # What debian:*-slim's dpkg configuration leaves out of every later install too.
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
  # No service starts inside the chroot while packages install.
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  in_root "$root" apt-get update -qq
  in_root "$root" apt-get -y -qq -o Dir::Cache::Archives=/var/cache/apt/archives upgrade >/dev/null
  release_root "$root"
}

# Installs packages into a copy of the minimal Debian, trims it and imports it as an image.
import_image() {
  local name=$1 image_recipe=$2
  shift 2
  local root=$work/root
  rm -rf "$root"
  cp -a "$work/minbase" "$root"
  if [ "$#" -gt 0 ]; then
    say "$name: apt-get install $*"
    mkdir -p "$root/var/cache/apt/archives"
    mount --bind "$cache/apt" "$root/var/cache/apt/archives" && mounted+=("$root/var/cache/apt/archives")
    in_root "$root" apt-get install -y -qq --no-install-recommends "$@" >"$work/apt.log" 2>&1 \
      || { tail -n 20 "$work/apt.log" >&2; die "apt-get install $* failed"; }
    umount "$root/var/cache/apt/archives"
    release_root "$root"
  fi
  if [ -x "$root/usr/bin/pg_lsclusters" ]; then
    # Debian's package creates and registers a cluster; the image's entry point makes its own.
    chroot "$root" pg_dropcluster "$postgres_major" main 2>/dev/null || true
  fi
  rm -f "$root/usr/sbin/policy-rc.d"
  find "$root/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
  rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/lib/apt/lists/* \
    "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log \
    "$root"/var/cache/debconf/*-old "$root"/tmp/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  say "$name: docker import ($(du -sh "$root" | cut -f1))"
  tar -C "$root" --numeric-owner -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change "LABEL org.bakeoff.recipe=$image_recipe" \
    --change 'CMD ["bash"]' \
    - "$name" >/dev/null
}

started=$SECONDS
if has_recipe "$runtime_image" "$runtime_recipe" && has_recipe "$python_image" "$python_recipe" \
  && has_recipe "$postgres_image" "$postgres_recipe"; then
  say "the bases are up to date ($runtime_image, $python_image, $postgres_image)"
else
  command -v debootstrap >/dev/null 2>&1 || {
    say "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  minbase_made=false
  minbase() { [ "$minbase_made" = true ] || make_minbase; minbase_made=true; }
  if ! has_recipe "$runtime_image" "$runtime_recipe"; then
    minbase
    import_image "$runtime_image" "$runtime_recipe" "${runtime_packages[@]}"
  fi
  if ! has_recipe "$python_image" "$python_recipe"; then
    minbase
    import_image "$python_image" "$python_recipe" "${python_packages[@]}"
  fi
  if ! has_recipe "$postgres_image" "$postgres_recipe"; then
    if ! has_recipe "$postgres_base_image" "$postgres_base_recipe"; then
      minbase
      import_image "$postgres_base_image" "$postgres_base_recipe" "${postgres_packages[@]}"
    fi
    say "$postgres_image: docker build docker/postgres"
    docker build --build-arg "BASE_IMAGE=$postgres_base_image" \
      --label "org.bakeoff.recipe=$postgres_recipe" -t "$postgres_image" docker/postgres \
      >"$work/build.log" 2>&1 || { tail -n 20 "$work/build.log" >&2; die "docker build docker/postgres failed"; }
  fi
  say "bases built in $((SECONDS - started)) s"
fi

# ---- What compose needs on this machine ----------------------------------------------------

# Binaries built here run in the images only if this machine is the images' Debian release:
# they link the release's glibc (and libpq).
host_release=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
[ "$host_release" = "$release" ] \
  || die "this machine runs Debian $host_release, the images $release: its binaries would not run there"

mkdir -p target/docker
# The Dockerfile for binaries built on this machine: docker/Dockerfile's build section, from
# its "---- Build" line to its "---- Runtime" line, replaced by one stage that copies them.
awk '
  /^# ---- Build / { skipping = 1; while ((getline line < "docker/host-binaries.dockerfile") > 0) print line; next }
  /^# ---- Runtime / { skipping = 0 }
  !skipping { print }
' docker/Dockerfile >target/docker/Dockerfile.host
grep -q '^FROM .* AS build$' target/docker/Dockerfile.host \
  || die "could not derive target/docker/Dockerfile.host from docker/Dockerfile"

cat >target/docker/bases.env <<EOF
# Written by docker/bases.sh: compose on a machine without a registry. Load it with
#   set -a; . target/docker/bases.env; set +a
BAKEOFF_DEBIAN_IMAGE=$runtime_image
BAKEOFF_PYTHON_IMAGE=$python_image
BAKEOFF_POSTGRES_IMAGE=$postgres_image
BAKEOFF_DOCKERFILE=target/docker/Dockerfile.host
EOF
say "wrote target/docker/Dockerfile.host and target/docker/bases.env"
