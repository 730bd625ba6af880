#!/bin/sh
# Creates and migrates both Temporal databases. The compose stack's one-shot "temporal-schema" job
# runs it in the admin-tools image; `nova-upgrade server start --stack postgres` runs it with its
# own temporal-sql-tool (built from the same go.temporal.io/server release) first on PATH.
# Safe to re-run on every start: existing databases are kept, and setup/update only move the
# schema forward, which is also how a Temporal server upgrade gets its schema.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS names the PostgreSQL host}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
export SQL_PASSWORD
PORT="${DB_PORT:-5432}"

sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" "$@"; }

# The schema files are embedded in the tool (--schema-name), so the tool's release decides the
# schema and no schema directory has to ship beside it.
for pair in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  db="${pair%%:*}"
  schema="postgresql/v12/${pair##*:}"
  echo "schema: $db from $schema"
  # `create` fails on an existing database; that one error is expected on every later run.
  if ! out="$(sql --db "$db" create 2>&1)"; then
    case "$out" in
      *"already exists"*) echo "schema: database $db already exists" ;;
      *) echo "$out" >&2; exit 1 ;;
    esac
  fi
  sql --db "$db" setup-schema -v 0.0
  sql --db "$db" update-schema --schema-name "$schema"
done
echo "schema: done"
