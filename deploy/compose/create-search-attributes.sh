#!/bin/sh
# Creates the namespace if missing and registers the search attributes the upgrade workflow
# upserts (the list must match common/searchAttributes.ts; `server start --stack postgres`
# checks it does). The compose stack's one-shot "temporal-search-attributes" job runs it in the
# admin-tools image; the native stack runs it with its cached Temporal CLI first on PATH.
# Waits for the frontend, and treats "already there" as success, so every start may run it.
set -eu

ADDRESS="${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
t() { temporal "$@" --address "$ADDRESS"; }

# Up to 2 minutes for the frontend: a cold server on two cores serves in ~10 s.
tries=0
until t operator cluster health >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "the Temporal frontend at $ADDRESS did not become healthy" >&2
    exit 1
  fi
  sleep 2
done

# A fresh PostgreSQL-backed server has no "default" namespace until someone creates it. A create
# that races another start fails with "already exists", which is fine.
if ! t operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
  t operator namespace create --namespace "$NAMESPACE" --retention 30d || true
fi
# The frontend's namespace cache catches up with a new namespace within ~10 s.
tries=0
until existing="$(t operator search-attribute list --namespace "$NAMESPACE" 2>/dev/null)"; do
  tries=$((tries + 1))
  if [ "$tries" -ge 30 ]; then
    echo "namespace $NAMESPACE on $ADDRESS did not become available" >&2
    exit 1
  fi
  sleep 1
done

for name in UpgradePhase UpgradeStep UpgradeStatus NovaCloud; do
  if printf '%s\n' "$existing" | grep -Eq "^[[:space:]]*$name[[:space:]]"; then
    echo "search attribute $name already exists"
  else
    t operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type Keyword
  fi
done
