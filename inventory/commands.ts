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
  // Placement's code first: its db sync and restart would otherwise run the old release again.
  // A series' newest placement (placement has its own version numbers: 2025.1 is 13.x).
  installPlacement:
    'cd /opt/stack/placement && git fetch origin && git checkout origin/stable/{series} && {venv}/bin/pip install -e /opt/stack/placement',
  upgradePlacement: '{venv}/bin/placement-manage db sync && sudo systemctl restart devstack@placement-api',
  apiDbSync: '{venv}/bin/nova-manage api_db sync',
  // --local_cell, as nova's docs and devstack run it: a cell's config (devstack's
  // nova_cell1.conf) has no [api_database], and without the flag nova-manage also syncs cell0
  // through the API database and exits 1 with "Could not access cell0".
  dbSync: '{venv}/bin/nova-manage --config-file {config} db sync --local_cell',
  upgradeCheck: '{venv}/bin/nova-status upgrade check',
  // nova's own cell mappings (API database): a cell the inventory lacks would never be synced
  // or migrated. Prints a PrettyTable: Name, UUID, Transport URL, Database Connection, Disabled.
  cellList: '{venv}/bin/nova-manage cell_v2 list_cells',
  // The services rows of every cell (their service versions, which no API shows), read through
  // nova's own code by nova's Python with the API config: {script} is the read
  // (activities/nova/serviceVersions.ts SERVICE_ROWS_SCRIPT). Prints one JSON line.
  serviceVersions: '{venv}/bin/python3 -c {script} --config-file {apiConfig}',
  // Per cell, with that cell's config: nova-manage migrates only the [database] it reads. The
  // API config comes first: most migrations also read or write the API database (quota limits
  // and classes, instance mappings for populate_queued_for_delete and populate_user_id), and a
  // cell's own config (devstack's nova_cell1.conf) has no [api_database]; the real nova 34.0.0
  // then exits 2 on cell1. oslo.config's later file wins, so [database] is the cell's.
  onlineDataMigrations:
    '{venv}/bin/nova-manage --config-file {apiConfig} --config-file {config} db online_data_migrations --max-count {maxCount}',
  serviceState: 'systemctl show --property=MainPID,ActiveState,SubState,ExecMainStartTimestampMonotonic {unit}',
  serviceStart: 'sudo systemctl start {unit}',
  serviceStop: 'sudo systemctl stop {unit}',
  serviceRestart: 'sudo systemctl restart {unit}',
  serviceHup: 'sudo systemctl kill --kill-whom=main --signal=HUP {unit}',
  // The become rule of every other command: a nova.conf that only root may read or write is
  // read and written through sudo, whoever logs in. {script} is the atomic write (config.ts).
  readFile: 'sudo cat {path}',
  writeFile: 'sudo sh -c {script}',
  // --long adds "Disabled Reason": an operator's own disable must be told from this upgrade's.
  serviceList: 'OS_CLOUD={osCloud} openstack compute service list --long -f json',
  computeServiceDisable:
    'OS_CLOUD={osCloud} openstack compute service set --disable --disable-reason {reason} {host} nova-compute',
  computeServiceEnable: 'OS_CLOUD={osCloud} openstack compute service set --enable {host} nova-compute',
  // Only after the operator chose it at the service-version preflight's hold, for a record
  // that is still down: {id} is its uuid. 2.53 is the first compute API that takes a uuid here;
  // before it the id is the per-cell integer, and nova deletes the first match in any cell.
  computeServiceDelete: 'OS_CLOUD={osCloud} openstack --os-compute-api-version 2.53 compute service delete {id}',
  serverTasksOnHost:
    'OS_CLOUD={osCloud} openstack server list --all-projects --host {host} -f json -c ID -c "Task State"',
  // Every region and interface: the step picks the inventory's, and must see whether the
  // catalog has more than one region. `endpoint set --region` would MOVE an endpoint, so the set
  // names the endpoint by its id alone.
  endpointList: 'OS_CLOUD={osCloud} openstack endpoint list --service compute -f json',
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
  installPlacement: ['version', 'series', 'node', 'venv'],
  upgradePlacement: ['version', 'node', 'venv'],
  apiDbSync: ['venv'],
  dbSync: ['config', 'cell', 'venv'],
  upgradeCheck: ['venv'],
  cellList: ['venv'],
  serviceVersions: ['script', 'apiConfig', 'venv'],
  onlineDataMigrations: ['maxCount', 'apiConfig', 'config', 'cell', 'venv'],
  serviceState: ['unit', 'node'],
  serviceStart: ['unit', 'node'],
  serviceStop: ['unit', 'node'],
  serviceRestart: ['unit', 'node'],
  serviceHup: ['unit', 'node'],
  readFile: ['path'],
  writeFile: ['path', 'script'],
  serviceList: ['osCloud'],
  computeServiceDisable: ['osCloud', 'host', 'reason'],
  computeServiceEnable: ['osCloud', 'host'],
  computeServiceDelete: ['osCloud', 'id'],
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

/**
 * The inventory's check of command templates, by field: unknown placeholders refused before
 * anything runs. Pure, so the workflow applies the same check to templates changed while held.
 */
export function templateProblems(overrides: Record<string, unknown>, profile = 'devstack'): string[] {
  const problems: string[] = [];
  for (const [name, template] of Object.entries(overrides)) {
    const allowed = COMMAND_PLACEHOLDERS[name as CommandName] as readonly string[] | undefined;
    if (!allowed || typeof template !== 'string') continue;
    for (const p of [...new Set(placeholdersIn(template))]) {
      if (p === 'venv' && allowed.includes(p) && profile !== 'devstack') {
        problems.push(
          `commands.${name}: {venv} is devstack's global venv, and profile ${profile} has none; write the program's path`,
        );
      } else if (!allowed.includes(p)) {
        problems.push(
          `commands.${name}: unknown placeholder {${p}}; this template may use ${allowed.length ? allowed.map((a) => `{${a}}`).join(', ') : 'no placeholders'}`,
        );
      }
    }
  }
  return problems;
}
