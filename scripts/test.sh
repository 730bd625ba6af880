#!/usr/bin/env bash
# `npm test`'s runner, after the type checks and the build (package.json).
#
# With the real-nova venvs (NOVA_UPGRADE_VENVS names a pair, as CI does), the tests that run real
# OpenStack go in a second lane beside the rest of the suite: one whole 33 -> 34 upgrade of real
# nova, placement and keystone (test/realLab.test.ts, its upgrade test), then the keystone
# regions test. One after the other the two lanes take about 23 + 13 min on this 2-core machine,
# over CI's 30-minute warm budget; side by side the real lane mostly waits on nova's own commands
# and tempest, and the rest on Temporal timers and lab nodes. Each lane has its own Temporal dev
# server (test/globalSetup.ts picks free ports) and its own subnets (127.0.30, 127.0.36), so
# nothing is shared but the CPU. The real lab's negative controls and its injected fault run
# when the file is run by itself (docs/real-lab.md).
#
# Arguments (a file, -t …) run plain vitest, as does a machine without the venvs
# (NOVA_UPGRADE_VENVS unset or skip: the real tests then report themselves skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
vitest=node_modules/.bin/vitest
real_files=(test/realLab.test.ts test/keystoneRegions.test.ts)

if [[ $# -gt 0 || "${NOVA_UPGRADE_VENVS:-skip}" == skip ]]; then
  exec "$vitest" run "$@"
fi

# Every line of the real lane is prefixed, so the two reports can be told apart in one log.
(
  start=$SECONDS
  "$vitest" run test/realLab.test.ts -t 'upgrades nova' && "$vitest" run test/keystoneRegions.test.ts
  rc=$?
  printf 'real-nova lane: exited %d after %d s\n' "$rc" "$((SECONDS - start))"
  exit "$rc"
) 2>&1 | sed -u 's/^/[real-nova] /' &
real_pid=$!
# An interrupted run stops both lanes (the real lab's own afterAll takes its lab down).
trap 'kill 0' INT TERM

start=$SECONDS
"$vitest" run $(printf -- '--exclude %s ' "${real_files[@]}")
rest=$?
printf 'the rest of the suite: exited %d after %d s\n' "$rest" "$((SECONDS - start))"
# pipefail: the lane's own status, not sed's.
wait "$real_pid"
real=$?

printf '\nnpm test: the suite exited %d, the real-nova lane (%s) exited %d\n' "$rest" "${real_files[*]}" "$real"
[[ $rest -eq 0 && $real -eq 0 ]]
