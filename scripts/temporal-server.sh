#!/usr/bin/env bash
# Ensures the team stack's own Temporal components are in a versioned cache, built from their Go
# modules (the same sources as the compose file's images), and prints where they are on stdout as
# name=path lines:
#   temporal-server=…    go.temporal.io/server/cmd/server            (the image's temporal-server)
#   temporal-sql-tool=…  go.temporal.io/server/cmd/tools/sql         (the admin-tools image's schema tool)
#   ui-server=…          github.com/temporalio/ui-server/v2/cmd/server (the temporalio/ui image's server)
#   ui-config=…          the ui-server module's config/docker.yaml, the template that image renders
# The UI module embeds the built Web UI (ui/assets, ~150 MB of the module), so the binary is all
# the UI needs. Everything else goes to stderr so callers can capture the paths. Idempotent: a
# binary whose `go version -m` names the pinned module version is reused as is.
set -euo pipefail

SERVER_VERSION=v1.29.1 # docker-compose.yml: temporalio/server:1.29.1, admin-tools 1.29.1
UI_VERSION=v2.42.1     # docker-compose.yml: temporalio/ui:2.42.1
CACHE="${NOVA_UPGRADE_CACHE:-$HOME/.cache/nova-upgrade}"
SERVER_DIR="$CACHE/temporal-server/$SERVER_VERSION"
UI_DIR="$CACHE/temporal-ui/$UI_VERSION"

log() { echo "temporal-server: $*" >&2; }

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  PATH="$PATH:/usr/local/go/bin"
fi

# is_built BIN PACKAGE MODULE VERSION: the binary exists and was built from that package of that
# module version (a renamed or stale binary fails the check and is rebuilt).
is_built() {
  local bin="$1" pkg="$2" mod="$3" ver="$4" info
  [[ -x "$bin" ]] || return 1
  info="$(go version -m "$bin" 2>/dev/null)" || return 1
  grep -Eq "^[[:space:]]+path[[:space:]]+$pkg$" <<<"$info" &&
    grep -Eq "^[[:space:]]+mod[[:space:]]+$mod[[:space:]]+$ver([[:space:]]|$)" <<<"$info"
}

server_ok() {
  is_built "$SERVER_DIR/temporal-server" go.temporal.io/server/cmd/server go.temporal.io/server "$SERVER_VERSION" &&
    is_built "$SERVER_DIR/temporal-sql-tool" go.temporal.io/server/cmd/tools/sql go.temporal.io/server "$SERVER_VERSION"
}
ui_ok() {
  is_built "$UI_DIR/ui-server" github.com/temporalio/ui-server/v2/cmd/server github.com/temporalio/ui-server/v2 "$UI_VERSION" &&
    [[ -s "$UI_DIR/config/docker.yaml" ]]
}

print_paths() {
  echo "temporal-server=$SERVER_DIR/temporal-server"
  echo "temporal-sql-tool=$SERVER_DIR/temporal-sql-tool"
  echo "ui-server=$UI_DIR/ui-server"
  echo "ui-config=$UI_DIR/config/docker.yaml"
}

if server_ok && ui_ok; then
  print_paths
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is needed to build the Temporal server $SERVER_VERSION and was not found on PATH (install Go >= 1.25)"
  exit 1
fi

scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT
# Upstream's release binaries are static (CGO off); so are these, and no C compiler is needed.
export CGO_ENABLED=0

if ! server_ok; then
  mkdir -p "$SERVER_DIR"
  log "building go.temporal.io/server $SERVER_VERSION (server and SQL tool) into $SERVER_DIR"
  start=$SECONDS
  # A scratch GOBIN, then a move: an interrupted build never leaves a binary a later run trusts.
  tmp="$(mktemp -d "$SERVER_DIR/.build.XXXXXX")"
  scratch+=("$tmp")
  GOBIN="$tmp" go install "go.temporal.io/server/cmd/server@$SERVER_VERSION" "go.temporal.io/server/cmd/tools/sql@$SERVER_VERSION" >&2
  # The images call them temporal-server and temporal-sql-tool; the deploy scripts use those names.
  mv -f "$tmp/sql" "$SERVER_DIR/temporal-sql-tool"
  mv -f "$tmp/server" "$SERVER_DIR/temporal-server"
  log "server and SQL tool built in $((SECONDS - start))s"
  server_ok || { log "the freshly built binaries in $SERVER_DIR do not identify as go.temporal.io/server $SERVER_VERSION"; exit 1; }
fi

if ! ui_ok; then
  mkdir -p "$UI_DIR/config"
  log "building github.com/temporalio/ui-server/v2 $UI_VERSION into $UI_DIR"
  start=$SECONDS
  tmp="$(mktemp -d "$UI_DIR/.build.XXXXXX")"
  scratch+=("$tmp")
  GOBIN="$tmp" go install "github.com/temporalio/ui-server/v2/cmd/server@$UI_VERSION" >&2
  # The image renders this template from the environment (TEMPORAL_ADDRESS, TEMPORAL_UI_PORT, …);
  # the native stack runs the same file with the same variables.
  moddir="$(go mod download -json "github.com/temporalio/ui-server/v2@$UI_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  if [[ ! -s "$moddir/config/docker.yaml" ]]; then
    log "github.com/temporalio/ui-server/v2@$UI_VERSION has no config/docker.yaml (module dir: ${moddir:-unknown})"
    exit 1
  fi
  cp "$moddir/config/docker.yaml" "$tmp/docker.yaml"
  mv -f "$tmp/docker.yaml" "$UI_DIR/config/docker.yaml"
  mv -f "$tmp/server" "$UI_DIR/ui-server"
  log "UI server built in $((SECONDS - start))s"
  ui_ok || { log "the freshly built $UI_DIR/ui-server does not identify as github.com/temporalio/ui-server/v2 $UI_VERSION"; exit 1; }
fi

print_paths
