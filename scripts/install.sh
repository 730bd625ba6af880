#!/usr/bin/env bash
# Installs what nova-upgrade and its lab need on Debian 12 as root, idempotently: the apt
# packages, the Temporal CLI and the team stack's server, SQL tool and UI server (each built once
# into a versioned cache), npm dependencies and the build.
# Used by .ci/run and scripts/lab-demo.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n=== %s\n' "$*" >&2; }

step "system packages"
# sudo: the node-access preflight's tests (sudo -n). postgresql-15: the team stack's database (`nova-upgrade server start --stack postgres`).
APT_PACKAGES=(haproxy openssh-server openssh-client socat keepalived python3-stestr iproute2 chromium postgresql-15 sudo)
# The kolla lab (lab up --nova kolla, test/kollaLab.test.ts): podman with runc (crun refuses a
# hybrid cgroup layout), and Debian's docker-registry as the lab's image registry.
APT_PACKAGES+=(podman runc docker-registry)
# The real-nova lab (lab up --nova real), when NOVA_UPGRADE_VENVS names a pair: Debian's MariaDB,
# RabbitMQ and uwsgi with its Python 3.11 plugin, and what scripts/openstack-venvs.sh needs to
# build the OpenStack venvs with Debian's own python3.11 (uwsgi-plugin-python3's interpreter).
if [[ "${NOVA_UPGRADE_VENVS:-skip}" != skip ]]; then
  APT_PACKAGES+=(mariadb-server mariadb-client rabbitmq-server uwsgi-core uwsgi-plugin-python3 python3-venv python3-dev build-essential curl)
fi
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
# Debian's docker-registry package enables a registry on every address, port 5000, where systemd
# runs; the kolla lab starts its own on loopback only.
if [[ -d /run/systemd/system ]] && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
  systemctl disable --now docker-registry >&2
fi

# NOVA_UPGRADE_VENVS=33-34 (or 31-33) builds the real-nova lab's venvs (15 min cold, measured
# on a busy machine; 0.2 s warm). Asked for, npm test also runs one real-nova upgrade
# (test/realLab.test.ts) beside the rest (scripts/test.sh); CI asks for it (.ci/run).
# Cold, they build beside the Go builds below: pip mostly downloads and unpacks on one core,
# while Go compiles on both, so side by side the cold install takes about the longer of the two
# instead of their sum. Their lines are prefixed [venvs]; a failure fails the install at the end.
venvs_pid=
if [[ "${NOVA_UPGRADE_VENVS:-skip}" != skip ]]; then
  step "OpenStack venvs for the real-nova lab (beside the builds below)"
  (bash scripts/openstack-venvs.sh --pair "${NOVA_UPGRADE_VENVS}" 2>&1 | sed -u 's/^/[venvs] /' >&2) &
  venvs_pid=$!
fi

step "Temporal CLI"
temporal_cli="$(bash scripts/temporal-cli.sh)"
"$temporal_cli" --version >&2

step "Temporal server, SQL tool and UI server (the team stack)"
bash scripts/temporal-server.sh >&2

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

if [[ -n "$venvs_pid" ]]; then
  step "OpenStack venvs for the real-nova lab: waiting for the build"
  # pipefail: the build's own status, not sed's.
  wait "$venvs_pid"
fi
