// Command templates with the devstack profile's defaults (the other profiles are in
// inventory/profiles/). Every placeholder value is shell-quoted when rendered, so a template may
// not use a placeholder it does not declare: the inventory check refuses unknown ones before
// anything runs.
//
// A current devstack (stackrc: GLOBAL_VENV=True, the default except on CentOS Stream and
// Rocky) installs every project into one venv, {venv} = /opt/stack/data/venv (DEVSTACK_VENV),
// and links only nova-manage and openstack into /usr/local/bin (stack.sh): nova-status and
// placement-manage are on no non-interactive PATH, so every nova program is called by its full
// venv path. There is no system pip to call either (PEP 668: Debian 12 and Ubuntu 24.04 refuse
// `pip install` outside a venv); devstack's pip_install runs the venv's own pip as the stack
// user, without sudo.
export const DEFAULT_COMMANDS = {
  /** Prints the installed nova release (e.g. 31.0.0) on stdout. */
  codeVersion: '{venv}/bin/nova-manage --version',
  installCode:
    'cd /opt/stack/nova && git fetch --tags origin && git checkout {version} && {venv}/bin/pip install -e /opt/stack/nova',
  upgradePlacement: '{venv}/bin/placement-manage db sync && sudo systemctl restart devstack@placement-api',
  apiDbSync: '{venv}/bin/nova-manage api_db sync',
  // --local_cell, as nova's docs and devstack run it: a cell's config (devstack's
  // nova_cell1.conf) has no [api_database], and without the flag nova-manage also syncs cell0
  // through the API database and exits 1 with "Could not access cell0".
  dbSync: '{venv}/bin/nova-manage --config-file {config} db sync --local_cell',
  upgradeCheck: '{venv}/bin/nova-status upgrade check',
  // Per cell, with that cell's config: nova-manage migrates only the [database] it reads.
  onlineDataMigrations:
    '{venv}/bin/nova-manage --config-file {config} db online_data_migrations --max-count {maxCount}',
  serviceState: 'systemctl show --property=MainPID,ActiveState,SubState,ExecMainStartTimestampMonotonic {unit}',
  serviceStart: 'sudo systemctl start {unit}',
  serviceStop: 'sudo systemctl stop {unit}',
  serviceRestart: 'sudo systemctl restart {unit}',
  serviceHup: 'sudo systemctl kill --kill-whom=main --signal=HUP {unit}',
  readFile: 'cat {path}',
  // --long adds "Disabled Reason": an operator's own disable must be told from this upgrade's.
  serviceList: 'OS_CLOUD={osCloud} openstack compute service list --long -f json',
  computeServiceDisable:
    'OS_CLOUD={osCloud} openstack compute service set --disable --disable-reason {reason} {host} nova-compute',
  computeServiceEnable: 'OS_CLOUD={osCloud} openstack compute service set --enable {host} nova-compute',
  serverTasksOnHost:
    'OS_CLOUD={osCloud} openstack server list --all-projects --host {host} -f json -c ID -c "Task State"',
  endpointList: 'OS_CLOUD={osCloud} openstack endpoint list --service compute --interface public -f json',
  endpointSet: 'OS_CLOUD={osCloud} openstack endpoint set --url {url} {endpointId}',
  tempest: 'cd /opt/stack/tempest && tempest run --smoke',
  /** `lb setup`: exits 0 with "Configuration file is valid", 1 on errors; warnings still exit 0. */
  haproxyCheckConfig: '/usr/sbin/haproxy -c -f {config}',
  // reload-or-restart: a node set up for the first time has no HAProxy running to reload.
  haproxyReload: 'sudo systemctl reload-or-restart haproxy',
  keepalivedRestart: 'sudo systemctl restart keepalived',
} as const;

export type CommandName = keyof typeof DEFAULT_COMMANDS;

/** devstack's global venv: the one placeholder only the devstack profile has a value for. */
export const DEVSTACK_VENV = '/opt/stack/data/venv';

export const COMMAND_PLACEHOLDERS: Record<CommandName, readonly string[]> = {
  codeVersion: ['venv'],
  installCode: ['version', 'node', 'venv'],
  upgradePlacement: ['version', 'node', 'venv'],
  apiDbSync: ['venv'],
  dbSync: ['config', 'cell', 'venv'],
  upgradeCheck: ['venv'],
  onlineDataMigrations: ['maxCount', 'config', 'cell', 'venv'],
  serviceState: ['unit', 'node'],
  serviceStart: ['unit', 'node'],
  serviceStop: ['unit', 'node'],
  serviceRestart: ['unit', 'node'],
  serviceHup: ['unit', 'node'],
  readFile: ['path'],
  serviceList: ['osCloud'],
  computeServiceDisable: ['osCloud', 'host', 'reason'],
  computeServiceEnable: ['osCloud', 'host'],
  serverTasksOnHost: ['osCloud', 'host'],
  endpointList: ['osCloud'],
  endpointSet: ['osCloud', 'url', 'endpointId'],
  tempest: [],
  haproxyCheckConfig: ['config', 'node'],
  haproxyReload: ['config', 'pidFile', 'node'],
  keepalivedRestart: ['config', 'node'],
};

const PLACEHOLDER = /\{([A-Za-z][A-Za-z0-9]*)\}/g;

export function placeholdersIn(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1]!);
}

/** POSIX single-quote: the only quoting that needs no knowledge of the remote shell's rules. */
export function shellQuote(value: string): string {
  if (/^[A-Za-z0-9_./:=@%+-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Fills a template. Pure and deterministic, so the workflow may call it to show the exact
 * command in progress and in `--dry-run`.
 */
export function renderCommand(name: CommandName, template: string, values: Record<string, string | number>): string {
  return template.replace(PLACEHOLDER, (whole, key: string) => {
    const v = values[key];
    if (v === undefined) {
      throw new Error(`command template "${name}" uses {${key}}, which has no value here`);
    }
    return shellQuote(String(v));
  });
}
