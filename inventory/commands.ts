// Command templates with devstack/systemd defaults. Every placeholder value is shell-quoted
// when rendered, so a template may not use a placeholder it does not declare: the inventory
// check refuses unknown ones before anything runs.
export const DEFAULT_COMMANDS = {
  /** Prints the installed nova release (e.g. 31.0.0) on stdout. */
  codeVersion: 'nova-manage --version',
  installCode:
    'cd /opt/stack/nova && git fetch --tags origin && git checkout {version} && sudo -H pip install -e /opt/stack/nova',
  upgradePlacement: 'placement-manage db sync && sudo systemctl restart devstack@placement-api',
  apiDbSync: 'nova-manage api_db sync',
  // --local_cell, as nova's docs and devstack run it: a cell's config (devstack's
  // nova_cell1.conf) has no [api_database], and without the flag nova-manage also syncs cell0
  // through the API database and exits 1 with "Could not access cell0".
  dbSync: 'nova-manage --config-file {config} db sync --local_cell',
  upgradeCheck: 'nova-status upgrade check',
  // Per cell, with that cell's config: nova-manage migrates only the [database] it reads. The
  // API config comes first: most migrations also read or write the API database (quota limits
  // and classes, instance mappings for populate_queued_for_delete and populate_user_id), and a
  // cell's own config (devstack's nova_cell1.conf) has no [api_database]; the real nova 34.0.0
  // then exits 2 on cell1. oslo.config's later file wins, so [database] is the cell's.
  onlineDataMigrations:
    'nova-manage --config-file {apiConfig} --config-file {config} db online_data_migrations --max-count {maxCount}',
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

export const COMMAND_PLACEHOLDERS: Record<CommandName, readonly string[]> = {
  codeVersion: [],
  installCode: ['version', 'node'],
  upgradePlacement: ['version', 'node'],
  apiDbSync: [],
  dbSync: ['config', 'cell'],
  upgradeCheck: [],
  onlineDataMigrations: ['maxCount', 'apiConfig', 'config', 'cell'],
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
