// Whether the tests that run the real OpenStack programs run (test/realLab.test.ts,
// test/keystoneRegions.test.ts): when NOVA_UPGRADE_VENVS names a release pair (33-34), which also
// makes scripts/install.sh build the venvs into ~/.cache/nova-upgrade/venvs. Without it they are
// reported as skipped: CI leaves them out, because on 2 cores they do not fit its 30-minute
// budget beside the rest of the suite (docs/real-lab.md, "CI").
export const REAL_VENVS = (process.env.NOVA_UPGRADE_VENVS ?? 'skip') !== 'skip';
