// Whether the tests that run the real OpenStack programs run (test/realLab.test.ts,
// test/keystoneRegions.test.ts): when NOVA_UPGRADE_VENVS names a release pair (33-34), which also
// makes scripts/install.sh build the venvs into ~/.cache/nova-upgrade/venvs. Without it they are
// reported as skipped, so a fresh machine's `npm test` needs no OpenStack; CI sets it and runs them
// in a lane beside the rest of the suite (scripts/test.sh, docs/real-lab.md "CI").
export const REAL_VENVS = (process.env.NOVA_UPGRADE_VENVS ?? 'skip') !== 'skip';
