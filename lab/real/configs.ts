// The files devstack would have written for a real-nova lab node: nova.conf (API database and
// cell0, what n-api, n-super-cond, n-sch and nova-manage read), nova_cell1.conf (the cell
// conductor's: no [api_database], as devstack writes it), nova-cpu.conf (no database at all),
// placement.conf, keystone.conf, the uwsgi ini files and clouds.yaml. Written once: the upgrade
// edits nova's files and a second `lab up` must not undo its edits.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeText } from '../node/env';
import { nodeLayout } from '../node/layout';
import { DB_PASSWORD, DB_USER, MARIADB_PORT, RABBIT_PASSWORD, RABBIT_PORT, RABBIT_USER } from './backing';

export const KEYSTONE_PORT = 5000;
export const PLACEMENT_PORT = 8778;
export const ADMIN_PASSWORD = 'secret';
export const SERVICE_PASSWORD = 'secret';
export const REGION = 'RegionOne';

export interface RealNodeFiles {
  root: string;
  name: string;
  address: string;
  controllerAddress: string;
  isController: boolean;
  isApi: boolean;
  isCompute: boolean;
  apiPort: number;
  /** uwsgi's worker-reload-mercy for nova-api: seconds in-flight requests get on SIGTERM. */
  apiMercySeconds: number;
  /** The cell whose message queue this node's nova-compute uses. */
  computeCell: string;
}

export const dbUrl = (ctl: string, db: string) =>
  `mysql+pymysql://${DB_USER}:${DB_PASSWORD}@${ctl}:${MARIADB_PORT}/${db}?charset=utf8`;
export const transportUrl = (ctl: string, vhost: string) =>
  `rabbit://${RABBIT_USER}:${RABBIT_PASSWORD}@${ctl}:${RABBIT_PORT}/${vhost}`;
export const keystoneUrl = (ctl: string) => `http://${ctl}:${KEYSTONE_PORT}`;
export const placementUrl = (ctl: string) => `http://${ctl}:${PLACEMENT_PORT}`;

function authSection(section: string, ctl: string, username: string): string {
  return `[${section}]
auth_url = ${keystoneUrl(ctl)}
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = ${username}
password = ${SERVICE_PASSWORD}
`;
}

function common(n: RealNodeFiles, vhost: string, extraDefault = ''): string {
  return `[DEFAULT]
host = ${n.name}
my_ip = ${n.address}
state_path = ${n.root}/data/nova
transport_url = ${transportUrl(n.controllerAddress, vhost)}
graceful_shutdown_timeout = 5
# Seconds between a service's heartbeats; nova's default (10) makes compute restarts show up
# in the service list within about that long.
report_interval = 10
${extraDefault}
[oslo_concurrency]
lock_path = ${n.root}/data/nova/locks

[oslo_messaging_rabbit]
heartbeat_timeout_threshold = 60

${authSection('placement', n.controllerAddress, 'placement')}region_name = ${REGION}

${authSection('service_user', n.controllerAddress, 'nova')}send_service_user_token = true

`;
}

function keystoneAuthtoken(ctl: string, username: string): string {
  return `[keystone_authtoken]
www_authenticate_uri = ${keystoneUrl(ctl)}
${authSection('x', ctl, username).split('\n').slice(1).join('\n')}`;
}

export function novaConf(n: RealNodeFiles): string {
  return `${common(n, '')}[api]
auth_strategy = keystone

[wsgi]
api_paste_config = ${join(nodeLayout(n.root).etcNova, 'api-paste.ini')}

[api_database]
connection = ${dbUrl(n.controllerAddress, 'nova_api')}

[database]
connection = ${dbUrl(n.controllerAddress, 'nova_cell0')}

${keystoneAuthtoken(n.controllerAddress, 'nova')}
[scheduler]
workers = 1
# Hosts show up in their cell within this many seconds, without a discover_hosts run.
discover_hosts_in_cells_interval = 10

[conductor]
workers = 1
`;
}

export function cellConf(n: RealNodeFiles, cell: string): string {
  return `${common(n, `nova_${cell}`)}[database]
connection = ${dbUrl(n.controllerAddress, `nova_${cell}`)}

[conductor]
workers = 1
`;
}

export function cpuConf(n: RealNodeFiles): string {
  return common(
    n,
    `nova_${n.computeCell}`,
    `compute_driver = fake.FakeDriverWithoutFakeNodes\ninstances_path = ${n.root}/data/nova/instances\n`,
  );
}

export function placementConf(n: RealNodeFiles): string {
  return `[DEFAULT]
debug = False

[api]
auth_strategy = keystone

[placement_database]
connection = ${dbUrl(n.controllerAddress, 'placement')}

${keystoneAuthtoken(n.controllerAddress, 'placement')}`;
}

export function keystoneConf(n: RealNodeFiles): string {
  const l = nodeLayout(n.root);
  return `[DEFAULT]
debug = False

[database]
connection = ${dbUrl(n.controllerAddress, 'keystone')}

[identity]
# bcrypt's fewest rounds (keystone's default is 12): every password login (the probes' tokens,
# tempest's accounts, the services' own auth) costs 1-4 s of CPU at 12 on this loaded 2-core
# machine. A lab setting, not an upgrade one.
password_hash_rounds = 4

[token]
provider = fernet

[fernet_tokens]
key_repository = ${join(l.etcKeystone, 'fernet-keys')}

[fernet_receipts]
key_repository = ${join(l.etcKeystone, 'fernet-keys')}

[credential]
key_repository = ${join(l.etcKeystone, 'credential-keys')}
`;
}

/**
 * devstack's uwsgi settings for its API services (lib/apache's write_uwsgi_config), served on
 * an HTTP socket instead of behind Apache: SIGTERM shuts down gracefully, letting in-flight
 * requests finish for worker-reload-mercy seconds.
 */
export function uwsgiIni(o: {
  module: string;
  virtualenv: string;
  listen: string;
  processes: number;
  mercySeconds: number;
  env: Record<string, string>;
}): string {
  return `[uwsgi]
plugins = python3
virtualenv = ${o.virtualenv}
module = ${o.module}
http-socket = ${o.listen}
master = true
processes = ${o.processes}
enable-threads = true
thunder-lock = true
lazy-apps = true
need-app = true
die-on-term = true
exit-on-reload = false
hook-master-start = unix_signal:15 gracefully_kill_them_all
worker-reload-mercy = ${o.mercySeconds}
add-header = Connection: close
buffer-size = 65535
${Object.entries(o.env)
  .map(([k, v]) => `env = ${k}=${v}`)
  .join('\n')}
`;
}

export function cloudsYaml(ctl: string): string {
  const cloud = (name: string, user: string, project: string) => `  ${name}:
    auth:
      auth_url: ${keystoneUrl(ctl)}
      project_name: ${project}
      username: ${user}
      password: ${ADMIN_PASSWORD}
      user_domain_id: default
      project_domain_id: default
    region_name: ${REGION}
    identity_api_version: 3
`;
  return `clouds:\n${cloud('devstack', 'admin', 'admin')}${cloud('devstack-admin', 'admin', 'admin')}${cloud('devstack-system-admin', 'admin', 'admin')}`;
}

/** The file paths of one real node; the same functions name them for the units and the inventory. */
export const realFiles = (root: string) => {
  const l = nodeLayout(root);
  return {
    novaConf: l.novaConf,
    cellConf: (cell: string) => join(l.etcNova, `nova_${cell}.conf`),
    cpuConf: l.cpuConf,
    apiPaste: join(l.etcNova, 'api-paste.ini'),
    novaApiIni: join(l.etcNova, 'nova-api-uwsgi.ini'),
    placementConf: join(l.etcPlacement, 'placement.conf'),
    placementIni: join(l.etcPlacement, 'placement-uwsgi.ini'),
    keystoneConf: join(l.etcKeystone, 'keystone.conf'),
    keystoneIni: join(l.etcKeystone, 'keystone-uwsgi.ini'),
    clouds: l.clouds,
  };
};

export function writeOnce(path: string, text: string): void {
  if (!existsSync(path)) writeText(path, text);
}
