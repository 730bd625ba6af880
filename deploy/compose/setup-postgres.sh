#!/bin/sh
# One-shot schema job for the compose stack: creates and migrates both Temporal databases.
# Safe to re-run on every `docker compose up`: existing databases are kept, and setup/update
# only move the schema forward, which is also how a Temporal server upgrade gets its schema.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS names the PostgreSQL host}"
: "${POSTGRES_USER:?POSTGRES_USER is required}"
: "${SQL_PASSWORD:?SQL_PASSWORD is required}"
PORT="${DB_PORT:-5432}"
SCHEMA_ROOT=/etc/temporal/schema/postgresql/v12

sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" "$@"; }

for pair in "${DBNAME:-temporal}:temporal" "${VISIBILITY_DBNAME:-temporal_visibility}:visibility"; do
  db="${pair%%:*}"
  dir="$SCHEMA_ROOT/${pair##*:}/versioned"
  echo "schema: $db from $dir"
  # `create` fails on an existing database; that one error is expected on every later run.
  if ! out="$(sql --db "$db" create 2>&1)"; then
    case "$out" in
      *"already exists"*) echo "schema: database $db already exists" ;;
      *) echo "$out" >&2; exit 1 ;;
    esac
  fi
  sql --db "$db" setup-schema -v 0.0
  sql --db "$db" update-schema -d "$dir"
done
echo "schema: done"
