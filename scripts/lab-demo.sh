#!/usr/bin/env bash
# The README's first command: install what is missing, then run a full upgrade of the built-in
# lab with every gate approved automatically. Extra arguments go to `nova-upgrade lab demo`
# (--mode monotonic, --json). `--stop` stops the worker, the lab and the Temporal dev server.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--stop" ]]; then
  exec ./bin/nova-upgrade lab stop-all
fi
# The stand-in demo needs none of the real-nova lab's packages and venvs (15 min cold), which
# install.sh builds by default for the tests; --nova real needs them (MariaDB, RabbitMQ, uwsgi).
venvs=skip
for a in "$@"; do
  if [[ "$a" == "--nova=real" || "${prev:-}" == "--nova" && "$a" == real ]]; then venvs=33-34; fi
  prev="$a"
done
export NOVA_UPGRADE_VENVS="${NOVA_UPGRADE_VENVS:-$venvs}"
bash scripts/install.sh
exec ./bin/nova-upgrade lab demo "$@"
