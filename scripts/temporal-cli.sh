#!/usr/bin/env bash
# Ensures the pinned Temporal CLI (which embeds the dev server) is in a versioned cache and
# prints its path on stdout. Everything else goes to stderr so callers can capture the path.
set -euo pipefail

VERSION=v1.5.1
# A go-install build reports "0.0.0-DEV" as its own version, so the embedded server version is
# the only hint --version gives; the module line from `go version -m` is the real check.
SERVER_VERSION="Server 1.29.1"
CACHE="${NOVA_UPGRADE_CACHE:-$HOME/.cache/nova-upgrade}"
BIN_DIR="$CACHE/temporal-cli/$VERSION"
BIN="$BIN_DIR/temporal"

log() { echo "temporal-cli: $*" >&2; }

# The official Go tarball lands in /usr/local/go, which non-login shells often lack on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
  PATH="$PATH:/usr/local/go/bin"
fi

is_good() {
  [[ -x "$BIN" ]] || return 1
  if command -v go >/dev/null 2>&1; then
    go version -m "$BIN" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+github.com/temporalio/cli[[:space:]]+$VERSION([[:space:]]|$)"
  else
    "$BIN" --version 2>/dev/null | grep -qF "$SERVER_VERSION"
  fi
}

if is_good; then
  echo "$BIN"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  log "Go is needed to build the Temporal CLI $VERSION and was not found on PATH (install Go >= 1.24)"
  exit 1
fi

if [[ -e "$BIN" ]]; then
  log "$BIN is not github.com/temporalio/cli $VERSION; rebuilding"
  rm -f "$BIN"
fi

mkdir -p "$BIN_DIR"
log "building github.com/temporalio/cli $VERSION into $BIN_DIR (a cold build takes ~5 minutes)"
start=$SECONDS
# Build into a scratch dir and move into place, so an interrupted build never leaves a
# half-written binary that a later run would trust.
tmp="$(mktemp -d "$BIN_DIR/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
GOBIN="$tmp" go install "github.com/temporalio/cli/cmd/temporal@$VERSION" >&2
mv -f "$tmp/temporal" "$BIN"
log "built in $((SECONDS - start))s"

if ! is_good; then
  log "the freshly built $BIN does not identify as github.com/temporalio/cli $VERSION"
  exit 1
fi
echo "$BIN"
