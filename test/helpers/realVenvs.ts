// Whether the tests that run the real OpenStack programs run: the real-nova lab's venvs are part
// of the default install (scripts/install.sh builds them into ~/.cache/nova-upgrade/venvs), as
// CI runs them; NOVA_UPGRADE_VENVS=skip leaves those tests out (reported as skipped) on a machine
// without them.
export const REAL_VENVS = (process.env.NOVA_UPGRADE_VENVS ?? '33-34') !== 'skip';
