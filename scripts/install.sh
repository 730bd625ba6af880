#!/usr/bin/env bash
# Installs what nova-upgrade and its lab need on Debian 12 as root, idempotently: the apt
# packages, the Temporal CLI (built once into a versioned cache), npm dependencies and the build.
# Used by .ci/run and scripts/lab-demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*" >&2; }

step "system packages"
APT_PACKAGES=(haproxy openssh-server openssh-client socat keepalived python3-stestr iproute2 chromium sudo)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  # dpkg -s also reports removed-but-configured packages; only "install ok installed" counts.
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >&2
  apt-get install -y --no-install-recommends "${APT_PACKAGES[@]}" >&2
else
  echo "all present: ${APT_PACKAGES[*]}" >&2
fi

step "Temporal CLI"
temporal_cli="$(bash scripts/temporal-cli.sh)"
"$temporal_cli" --version >&2

step "npm dependencies"
stamp=node_modules/.nova-upgrade-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
# CI always starts clean; elsewhere a matching stamp means node_modules is this lock's.
if [[ -n "${CI:-}" || ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  npm ci --no-audit --no-fund >&2
  echo "$want" > "$stamp"
else
  echo "node_modules matches package-lock.json" >&2
fi

step "build"
npm run build >&2
