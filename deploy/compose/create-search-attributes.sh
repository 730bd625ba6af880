#!/bin/sh
# One-shot job: registers the search attributes the upgrade workflow upserts (the list must match
# workflows/searchAttributes.ts). Waits for the frontend, and treats "already there" as success.
set -eu

ADDRESS="${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"

tries=0
until temporal operator namespace describe --address "$ADDRESS" --namespace "$NAMESPACE" >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -eq 10 ]; then
    # A fresh PostgreSQL-backed server has no "default" namespace until someone creates it.
    temporal operator namespace create --address "$ADDRESS" --namespace "$NAMESPACE" --retention 30d || true
  fi
  if [ "$tries" -ge 60 ]; then
    echo "namespace $NAMESPACE on $ADDRESS did not become available" >&2
    exit 1
  fi
  sleep 2
done

existing="$(temporal operator search-attribute list --address "$ADDRESS" --namespace "$NAMESPACE")"
for name in UpgradePhase UpgradeStep UpgradeStatus NovaCloud; do
  if printf '%s\n' "$existing" | grep -Eq "^[[:space:]]*$name[[:space:]]"; then
    echo "search attribute $name already exists"
  else
    temporal operator search-attribute create --address "$ADDRESS" --namespace "$NAMESPACE" --name "$name" --type Keyword
  fi
done
