#!/usr/bin/env bash
# `npm test`'s runner, after the type checks and the build (package.json).
#
# The real-nova lab's upgrade (test/realLab.test.ts: lab up, a whole 33 → 34 upgrade of real nova,
# placement and keystone, its negative controls) runs in a second vitest process beside the rest
# of the suite. One after the other they took 26.5 + 25 min on this 2-core machine, over CI's
# 30-minute warm budget; side by side the real lab spends most of its time waiting on nova's own
# commands and tempest, and the rest on Temporal timers and lab nodes, so the two share the cores.
# Each process has its own Temporal dev server (test/globalSetup.ts picks free ports), and the
# real lab's subnet (127.0.30) is its own, so nothing is shared but the CPU.
#
# Arguments (a file, -t …) run plain vitest, as do machines without the venvs
# (NOVA_UPGRADE_VENVS=skip: test/realLab.test.ts then reports itself skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
vitest=node_modules/.bin/vitest
real_file=test/realLab.test.ts

if [[ $# -gt 0 || "${NOVA_UPGRADE_VENVS:-33-34}" == skip ]]; then
  exec "$vitest" run "$@"
fi

# Every line of the real lab's run is prefixed, so the two reports can be told apart in one log.
("$vitest" run "$real_file" 2>&1 | sed -u 's/^/[real-nova] /') &
real_pid=$!
# An interrupted run stops both (the real lab's own afterAll takes its lab down).
trap 'kill 0' INT TERM

"$vitest" run --exclude "$real_file"
rest=$?
wait "$real_pid"
real=$?

printf '\nnpm test: the suite exited %d, the real-nova lab (%s) exited %d\n' "$rest" "$real_file" "$real"
[[ $rest -eq 0 && $real -eq 0 ]]
