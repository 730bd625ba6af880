#!/usr/bin/env bash
# The README's first command: install what is missing, then run a full upgrade of the built-in
# lab with every gate approved automatically. Extra arguments go to `nova-upgrade lab demo`
# (--mode monotonic, --json). `--stop` stops the worker, the lab and the Temporal dev server.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--stop" ]]; then
  exec ./bin/nova-upgrade lab stop-all
fi
bash scripts/install.sh
exec ./bin/nova-upgrade lab demo "$@"
