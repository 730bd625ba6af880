#!/usr/bin/env bash
# `npm test`'s runner, after the type checks and the build (package.json).
#
# With the real-nova venvs (NOVA_UPGRADE_VENVS names a pair, as CI does), the suite runs in two
# lanes side by side. The second lane holds the tests that run real OpenStack (one whole 33 -> 34
# upgrade of real nova, placement and keystone: test/realLab.test.ts, its upgrade test; then the
# keystone regions test), and after them the two longest lab files (crash, faults). The first lane
# runs the rest. One after the other everything takes about 23 + 13 min on this 2-core machine,
# over CI's 30-minute warm budget; side by side the real tests mostly wait on nova's own commands
# and tempest, and the lab files on Temporal timers and lab nodes.
#
# Why crash and faults join the second lane: with the real tests alone in it, the lane ended at
# ~770 s and the first lane at ~1,650 s (three CI runs, 1,730-1,828 s in all), at the budget.
# Those two files took 266 + 223 s of the first lane's 1,650 s; moved, the lanes are about even.
#
# Each lane has its own Temporal dev server (test/globalSetup.ts picks free ports), and every lab
# file its own subnet (127.0.5 crash, 127.0.6 faults, 127.0.30 real lab, 127.0.36 regions), so
# nothing is shared but the CPU. The real lab's negative controls and its injected fault run
# when the file is run by itself (docs/real-lab.md).
#
set -uo pipefail
cd "$(dirname "$0")/.."
vitest=node_modules/.bin/vitest
real_files=(test/realLab.test.ts test/keystoneRegions.test.ts)
second_lab_files=(test/crash.test.ts test/faults.test.ts)
second_files=("${real_files[@]}" "${second_lab_files[@]}")

if [[ $# -gt 0 || "${NOVA_UPGRADE_VENVS:-skip}" == skip ]]; then
  exec "$vitest" run "$@"
fi

# Every line of the second lane is prefixed, so the two reports can be told apart in one log.
# Each of its three runs goes on whatever the one before did, so one failure hides no other.
(
  start=$SECONDS
  rc=0
  "$vitest" run test/realLab.test.ts -t 'upgrades nova' || rc=1
  printf 'the real upgrade: after %d s\n' "$((SECONDS - start))"
  "$vitest" run test/keystoneRegions.test.ts || rc=1
  printf 'the real tests: after %d s\n' "$((SECONDS - start))"
  "$vitest" run "${second_lab_files[@]}" || rc=1
  printf 'second lane: exited %d after %d s\n' "$rc" "$((SECONDS - start))"
  exit "$rc"
) 2>&1 | sed -u 's/^/[lane 2] /' &
lane2_pid=$!
# An interrupted run stops both lanes (the real lab's own afterAll takes its lab down).
trap 'kill 0' INT TERM

start=$SECONDS
"$vitest" run $(printf -- '--exclude %s ' "${second_files[@]}")
rest=$?
printf 'first lane: exited %d after %d s\n' "$rest" "$((SECONDS - start))"
# pipefail: the lane's own status, not sed's.
wait "$lane2_pid"
lane2=$?

printf '\nnpm test: the first lane exited %d, the second lane (%s) exited %d\n' "$rest" "${second_files[*]}" "$lane2"
[[ $rest -eq 0 && $lane2 -eq 0 ]]
