#!/bin/sh
# Starts the Temporal server on temporal/server.yaml and dynamicconfig/temporal.yaml, next to this
# script. The compose stack's "temporal" service runs it as its entrypoint (this directory is
# mounted at /nova-upgrade); `nova-upgrade server start --stack postgres` runs the same script
# with its cached temporal-server first on PATH, so both start the server the same way.
set -eu

here="$(cd "$(dirname "$0")" && pwd)"
: "${POSTGRES_SEEDS:?POSTGRES_SEEDS names the PostgreSQL host}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${POSTGRES_PWD:?POSTGRES_PWD is required}"
: "${DYNAMIC_CONFIG_FILE_PATH:=$here/dynamicconfig/temporal.yaml}"
: "${BIND_ON_IP:=127.0.0.1}"
# Bound to every interface (compose), the other services need one address to reach this host
# at; the native stack binds a single loopback address and needs none.
if [ "$BIND_ON_IP" = 0.0.0.0 ] && [ -z "${TEMPORAL_BROADCAST_ADDRESS:-}" ]; then
  TEMPORAL_BROADCAST_ADDRESS="$(getent hosts "$(hostname)" | awk '{ print $1; exit }')"
fi
export DYNAMIC_CONFIG_FILE_PATH BIND_ON_IP TEMPORAL_BROADCAST_ADDRESS

# No authorizer: the frontend is reachable only on the compose network / loopback. A team that
# exposes it configures global.authorization (and TLS) in temporal/server.yaml.
exec temporal-server --root "$here" --config temporal --env server --allow-no-auth start
