#!/usr/bin/env bash
# Static checks of the Kubernetes manifests, for CI and by hand; no cluster is needed.
#
#  - every overlay is built by kubectl's own kustomize (`kubectl kustomize`), as
#    `kubectl apply -k` would build it;
#  - what it builds validates, strictly (no unknown field), against the schemas of Kubernetes
#    $KUBERNETES_VERSION with kubernetes-validate, installed from PyPI at the versions of
#    requirements.txt into .bakeoff/kubernetes-validate/venv (once, and again when they change);
#  - the PgBouncer image's entry point parses.
#
# What the manifests must contain (a Deployment per variant, the servers' environment, requests
# equal to limits) is checked by `cargo test -p bakeoff --test it kubernetes`.
set -euo pipefail
cd "$(dirname "$0")"

# The release the manifests are stated for (kubectl's client here is 1.32). What they use is GA
# well before it: Indexed Jobs and their JOB_COMPLETION_INDEX, suspended Jobs, kustomize components.
KUBERNETES_VERSION=1.32.0

step() { printf '  deploy/kubernetes/check.sh: %s\n' "$*"; }

if ! command -v kubectl >/dev/null 2>&1; then
  echo "deploy/kubernetes/check.sh: needs kubectl (with its built-in kustomize, v5 or later)" >&2
  exit 1
fi

venv=../../.bakeoff/kubernetes-validate/venv
stamp="$venv/requirements.txt"
if ! cmp -s requirements.txt "$stamp" || [ ! -x "$venv/bin/kubernetes-validate" ]; then
  step "installing kubernetes-validate into .bakeoff/kubernetes-validate/venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r requirements.txt
  cp requirements.txt "$stamp"
fi

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT
overlays=()
for overlay in overlays/*/; do
  name=$(basename "$overlay")
  kubectl kustomize "$overlay" > "$rendered/$name.yaml"
  overlays+=("$name")
done
[ "${#overlays[@]}" -gt 0 ] || { echo "deploy/kubernetes/check.sh: no overlays" >&2; exit 1; }
step "kubectl kustomize built ${overlays[*]}"

"$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$KUBERNETES_VERSION" \
  "$rendered"/*.yaml
step "every overlay is valid for Kubernetes $KUBERNETES_VERSION (strict)"

bash -n images/pgbouncer/entrypoint.sh
step "images/pgbouncer/entrypoint.sh parses"
