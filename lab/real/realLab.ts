// The real-nova lab's own half of `lab up --nova real`: venvs, each node's files and units,
// MariaDB and RabbitMQ, keystone's bootstrap and catalog, placement, and nova's cells v2, set up
// the way devstack does it. lab.ts keeps what both labs share (sshd, HAProxy, the inventory).
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import {
  cellConductorUnit,
  nodeLayout,
  stateLayout,
  NOVA_UNITS,
  type RealNodeConfig,
  type RealRelease,
  type RealUnit,
} from '../node/layout';
import type { Role } from '../../inventory/schema';
import { mariadbFiles, startMariadb, startRabbitmq } from './backing';
import {
  cellConf,
  cloudsYaml,
  cpuConf,
  dbUrl,
  keystoneConf,
  keystoneUrl,
  novaConf,
  placementConf,
  placementUrl,
  KEYSTONE_PORT,
  PLACEMENT_PORT,
  realFiles,
  transportUrl,
  uwsgiIni,
  writeOnce,
  ADMIN_PASSWORD,
  REGION,
  type RealNodeFiles,
} from './configs';
import { registerServices } from './keystone';

const run = promisify(execFile);

/** nova release → the placement release the lab pairs with it (scripts/openstack-venvs.sh). */
export const PLACEMENT_FOR: Record<string, string> = { '31.3.1': '13.0.1', '33.0.2': '15.0.0', '34.0.0': '16.0.0' };
/** The release pair a nova major picks in scripts/openstack-venvs.sh --pair. */
const MAJOR_OF = (v: string) => v.split('.')[0]!;
export const SHARED_VENVS = {
  keystone: 'keystone-30.0.0',
  openstackclient: 'openstackclient-10.5.0',
  tempest: 'tempest-47.0.0',
} as const;

export const venvRoot = () =>
  join(process.env.NOVA_UPGRADE_CACHE ?? join(homedir(), '.cache', 'nova-upgrade'), 'venvs');
const built = (dir: string) => existsSync(join(dir, '.nova-upgrade-stamp'));

export function realReleases(from: string, to: string): Record<string, RealRelease> {
  const out: Record<string, RealRelease> = {};
  for (const v of [from, to]) {
    const p = PLACEMENT_FOR[v];
    if (!p)
      throw new Error(
        `the real-nova lab has no venvs for nova ${v}; it knows ${Object.keys(PLACEMENT_FOR).join(', ')}`,
      );
    out[v] = { nova: join(venvRoot(), `nova-${v}`), placement: join(venvRoot(), `placement-${p}`) };
  }
  return out;
}

const repoRoot = () =>
  resolve(
    __dirname,
    existsSync(join(__dirname, '..', '..', 'package.json')) ? join('..', '..') : join('..', '..', '..'),
  );

/** Builds the pair's venvs with scripts/openstack-venvs.sh unless every one is already built. */
export async function ensureVenvs(from: string, to: string, log: (line: string) => void): Promise<void> {
  const releases = realReleases(from, to);
  const needed = [
    ...Object.values(releases).flatMap((r) => [r.nova, r.placement]),
    ...Object.values(SHARED_VENVS).map((v) => join(venvRoot(), v)),
  ];
  if (needed.every(built)) return;
  const pair = `${MAJOR_OF(from)}-${MAJOR_OF(to)}`;
  log(
    `building the OpenStack venvs for nova ${from} → ${to} (scripts/openstack-venvs.sh --pair ${pair}); a cold build takes minutes`,
  );
  await new Promise<void>((res, rej) => {
    const child = spawn('bash', [join(repoRoot(), 'scripts', 'openstack-venvs.sh'), '--pair', pair], {
      stdio: ['ignore', 'inherit', 'inherit'],
      cwd: repoRoot(),
    });
    child.on('error', rej);
    child.on('exit', (code) =>
      code === 0
        ? res()
        : rej(
            new Error(
              `scripts/openstack-venvs.sh --pair ${pair} exited ${code}; its output above names the package that failed`,
            ),
          ),
    );
  });
  const missing = needed.filter((d) => !built(d));
  if (missing.length)
    throw new Error(`these venvs are still missing after scripts/openstack-venvs.sh: ${missing.join(', ')}`);
}

/** The cells with computes a real lab of `cells` cells has, besides cell0: cell1, cell2, … */
export const labCells = (cells = 1): string[] => Array.from({ length: Math.max(1, cells) }, (_, i) => `cell${i + 1}`);

export function realUnitsFor(roles: Role[], cells = 1): string[] {
  return [
    ...(roles.includes('controller')
      ? [
          NOVA_UNITS.keystone,
          NOVA_UNITS.placement,
          NOVA_UNITS.superConductor,
          // devstack runs every cell's conductor on the controller (NOVA_NUM_CELLS > 1).
          ...labCells(cells).map(cellConductorUnit),
          NOVA_UNITS.scheduler,
        ]
      : []),
    ...(roles.includes('compute') ? [NOVA_UNITS.compute] : []),
    ...(roles.includes('api') ? [NOVA_UNITS.api] : []),
  ];
}

export interface RealNodeInput {
  stateDir: string;
  name: string;
  address: string;
  roles: Role[];
  controllerAddress: string;
  apiPort: number;
  apiMercySeconds: number;
  fromVersion: string;
  toVersion: string;
  /** The lab's cells besides cell0 (labCells): the controller writes a config and runs a conductor for each. */
  cells: string[];
  /** The cell this node's nova-compute is in. */
  computeCell: string;
}

function link(path: string, target: string): void {
  try {
    if (readlinkSync(path) === target) return;
    unlinkSync(path);
  } catch {
    /* absent */
  }
  mkdirSync(dirname(path), { recursive: true });
  symlinkSync(target, path);
}

/** Writes a node's files and links (once), and returns the units its systemctl runs. */
export function prepareRealNode(i: RealNodeInput): RealNodeConfig {
  const root = stateLayout(i.stateDir).node(i.name);
  const l = nodeLayout(root);
  const f = realFiles(root);
  const releases = realReleases(i.fromVersion, i.toVersion);
  const isController = i.roles.includes('controller');
  const n: RealNodeFiles = {
    root,
    name: i.name,
    address: i.address,
    controllerAddress: i.controllerAddress,
    isController,
    isApi: i.roles.includes('api'),
    isCompute: i.roles.includes('compute'),
    apiPort: i.apiPort,
    apiMercySeconds: i.apiMercySeconds,
    computeCell: i.computeCell,
  };
  mkdirSync(join(root, 'data', 'nova', 'locks'), { recursive: true });
  // The code a fresh node has is the "from" release; an upgrade moves the links, and a second
  // `lab up` must not move them back.
  if (!existsSync(l.codeLink)) link(l.codeLink, releases[i.fromVersion]!.nova);
  if (isController && !existsSync(l.placementLink)) link(l.placementLink, releases[i.fromVersion]!.placement);
  writeOnce(l.codeVersion, `${i.fromVersion}\n`);
  const venv = (name: string) => join(venvRoot(), name);
  // The node's own bin: the real commands the default templates call, through the code links.
  link(join(l.bin, 'nova-manage'), join(l.codeLink, 'bin', 'nova-manage'));
  link(join(l.bin, 'nova-status'), join(l.codeLink, 'bin', 'nova-status'));
  link(join(l.bin, 'openstack'), join(venv(SHARED_VENVS.openstackclient), 'bin', 'openstack'));
  link(join(l.bin, 'tempest'), join(venv(SHARED_VENVS.tempest), 'bin', 'tempest'));
  link(join(l.bin, 'stestr'), join(venv(SHARED_VENVS.tempest), 'bin', 'stestr'));
  if (isController) {
    link(join(l.bin, 'placement-manage'), join(l.placementLink, 'bin', 'placement-manage'));
    link(join(l.bin, 'keystone-manage'), join(venv(SHARED_VENVS.keystone), 'bin', 'keystone-manage'));
  }
  // oslo.config looks in ~/.nova/ before /etc/nova/, and HOME is the node root: nova-manage and
  // nova-status without --config-file read this node's nova.conf, as they read /etc/nova's.
  link(join(root, '.nova', 'nova.conf'), f.novaConf);
  writeOnce(f.novaConf, novaConf(n));
  writeOnce(f.clouds, cloudsYaml(i.controllerAddress));
  if (!existsSync(f.apiPaste)) {
    mkdirSync(dirname(f.apiPaste), { recursive: true });
    copyFileSync(join(releases[i.fromVersion]!.nova, 'etc', 'nova', 'api-paste.ini'), f.apiPaste);
  }
  const units: Record<string, RealUnit> = {};
  const python = (unit: string, binary: string, config: string): void => {
    units[unit] = {
      argv: [join(l.codeLink, 'bin', binary), '--config-file', config],
      env: {},
      stopSignal: 'SIGTERM',
      stopTimeoutSeconds: 30,
      codeLink: l.codeLink,
    };
  };
  const uwsgi = (unit: string, ini: string, readyUrl: string, codeLink: string, stopTimeoutSeconds: number): void => {
    units[unit] = {
      argv: ['/usr/bin/uwsgi', '--ini', ini],
      env: {},
      readyUrl,
      stopSignal: 'SIGTERM',
      stopTimeoutSeconds,
      codeLink,
    };
  };
  if (n.isApi) {
    writeOnce(
      f.novaApiIni,
      uwsgiIni({
        module: 'nova.wsgi.osapi_compute:application',
        virtualenv: l.codeLink,
        listen: `${i.address}:${i.apiPort}`,
        processes: 2,
        mercySeconds: i.apiMercySeconds,
        env: { OS_NOVA_CONFIG_DIR: l.etcNova },
      }),
    );
    // TimeoutStopSec must outlast uwsgi's own mercy, or the stop would cut the drain short.
    uwsgi(NOVA_UNITS.api, f.novaApiIni, `http://${i.address}:${i.apiPort}/`, l.codeLink, i.apiMercySeconds + 5);
  }
  if (n.isCompute) {
    writeOnce(f.cpuConf, cpuConf(n));
    python(NOVA_UNITS.compute, 'nova-compute', f.cpuConf);
  }
  if (isController) {
    python(NOVA_UNITS.superConductor, 'nova-conductor', f.novaConf);
    // devstack's nova_cell<N>.conf and n-cond-cell<N> for each cell.
    for (const cell of i.cells) {
      writeOnce(f.cellConf(cell), cellConf(n, cell));
      python(cellConductorUnit(cell), 'nova-conductor', f.cellConf(cell));
    }
    python(NOVA_UNITS.scheduler, 'nova-scheduler', f.novaConf);
    writeOnce(f.placementConf, placementConf(n));
    link(join(root, '.placement', 'placement.conf'), f.placementConf);
    writeOnce(
      f.placementIni,
      uwsgiIni({
        module: 'placement.wsgi.api:application',
        virtualenv: l.placementLink,
        listen: `${i.address}:${PLACEMENT_PORT}`,
        processes: 2,
        mercySeconds: 5,
        env: { OS_PLACEMENT_CONFIG_DIR: l.etcPlacement },
      }),
    );
    uwsgi(NOVA_UNITS.placement, f.placementIni, `${placementUrl(i.address)}/`, l.placementLink, 15);
    writeOnce(f.keystoneConf, keystoneConf(n));
    const ks = venv(SHARED_VENVS.keystone);
    writeOnce(
      f.keystoneIni,
      uwsgiIni({
        module: 'keystone.wsgi.api:application',
        virtualenv: ks,
        listen: `${i.address}:${KEYSTONE_PORT}`,
        processes: 2,
        mercySeconds: 5,
        env: { OS_KEYSTONE_CONFIG_DIR: l.etcKeystone },
      }),
    );
    uwsgi(NOVA_UNITS.keystone, f.keystoneIni, `${keystoneUrl(i.address)}/v3`, ks, 15);
  }
  return { units, releases, codeLink: l.codeLink, ...(isController ? { placementLink: l.placementLink } : {}) };
}

export interface NodeRunner {
  name: string;
  root: string;
  env: Record<string, string>;
}

/** Runs one of the node's own programs (<root>/bin/...) locally, with the node's environment. */
export async function runNodeBin(n: NodeRunner, cmd: string, args: string[], timeoutMs = 180_000): Promise<string> {
  try {
    const r = await run(join(nodeLayout(n.root).bin, cmd), args, {
      env: { ...n.env },
      cwd: n.root,
      timeout: timeoutMs,
      maxBuffer: 16 * 1024 * 1024,
    });
    return r.stdout;
  } catch (e) {
    const x = e as { stderr?: string; stdout?: string; code?: number | string };
    throw new Error(
      `${cmd} ${args.join(' ')} on ${n.name} failed (exit ${x.code}):\n${`${x.stdout ?? ''}\n${x.stderr ?? ''}`.trim().split('\n').slice(-20).join('\n')}`,
    );
  }
}

export const backingDirs = (stateDir: string) => ({
  mariadb: stateLayout(stateDir).backing('mariadb'),
  rabbitmq: stateLayout(stateDir).backing('rabbitmq'),
});

/** MariaDB and RabbitMQ, in parallel: a database and a vhost for each cell. */
export async function startBackingServices(
  stateDir: string,
  controllerAddress: string,
  cells: string[] = labCells(),
): Promise<void> {
  const d = backingDirs(stateDir);
  await Promise.all([
    startMariadb(stateDir, d.mariadb, controllerAddress, [
      'keystone',
      'placement',
      'nova_api',
      'nova_cell0',
      ...cells.map((c) => `nova_${c}`),
    ]),
    startRabbitmq(
      stateDir,
      d.rabbitmq,
      controllerAddress,
      cells.map((c) => `nova_${c}`),
    ),
  ]);
}

/** keystone's database, keys and bootstrap, then its unit; idempotent like keystone-manage. */
export async function setUpKeystone(
  ctl: NodeRunner,
  address: string,
  start: (units: string[]) => Promise<void>,
): Promise<void> {
  const f = realFiles(ctl.root);
  const conf = ['--config-file', f.keystoneConf];
  await runNodeBin(ctl, 'keystone-manage', [...conf, 'db_sync']);
  await runNodeBin(ctl, 'keystone-manage', [
    ...conf,
    'fernet_setup',
    '--keystone-user',
    'root',
    '--keystone-group',
    'root',
  ]);
  await runNodeBin(ctl, 'keystone-manage', [
    ...conf,
    'credential_setup',
    '--keystone-user',
    'root',
    '--keystone-group',
    'root',
  ]);
  const url = `${keystoneUrl(address)}/v3`;
  await runNodeBin(ctl, 'keystone-manage', [
    ...conf,
    'bootstrap',
    '--bootstrap-password',
    ADMIN_PASSWORD,
    '--bootstrap-admin-url',
    url,
    '--bootstrap-internal-url',
    url,
    '--bootstrap-public-url',
    url,
    '--bootstrap-region-id',
    REGION,
  ]);
  await start([NOVA_UNITS.keystone]);
}

export async function registerCatalog(address: string, computeUrl: string): Promise<void> {
  await registerServices({ keystoneUrl: keystoneUrl(address), computeUrl, placementUrl: placementUrl(address) });
}

/** devstack's init_nova and cell setup: api_db, cell0, then each cell (cell1, cell2…), each schema synced. */
export async function setUpNovaCells(ctl: NodeRunner, address: string, cells: string[] = labCells()): Promise<void> {
  const f = realFiles(ctl.root);
  await runNodeBin(ctl, 'nova-manage', ['api_db', 'sync']);
  await runNodeBin(ctl, 'nova-manage', ['cell_v2', 'map_cell0', '--database_connection', dbUrl(address, 'nova_cell0')]);
  await runNodeBin(ctl, 'nova-manage', ['--config-file', f.novaConf, 'db', 'sync', '--local_cell']);
  const listed = await runNodeBin(ctl, 'nova-manage', ['cell_v2', 'list_cells']);
  for (const cell of cells) {
    if (!new RegExp(`\\|\\s*${cell}\\s*\\|`).test(listed)) {
      await runNodeBin(ctl, 'nova-manage', [
        'cell_v2',
        'create_cell',
        '--name',
        cell,
        '--database_connection',
        dbUrl(address, `nova_${cell}`),
        '--transport-url',
        transportUrl(address, `nova_${cell}`),
      ]);
    }
    await runNodeBin(ctl, 'nova-manage', ['--config-file', f.cellConf(cell), 'db', 'sync', '--local_cell']);
  }
}

export async function setUpPlacement(ctl: NodeRunner): Promise<void> {
  await runNodeBin(ctl, 'placement-manage', ['db', 'sync']);
}

/** Maps every compute host into its cell once its nova-compute has registered. */
export async function discoverHosts(ctl: NodeRunner, hosts: string[], timeoutMs = 180_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let listed = '';
  for (;;) {
    await runNodeBin(ctl, 'nova-manage', ['cell_v2', 'discover_hosts']);
    listed = await runNodeBin(ctl, 'nova-manage', ['cell_v2', 'list_hosts']);
    if (hosts.every((h) => new RegExp(`\\|\\s*${h}\\s*\\|`).test(listed))) return;
    if (Date.now() > deadline)
      throw new Error(
        `after ${timeoutMs / 1000} s nova has not mapped every compute host (${hosts.join(', ')}) to a cell; nova-manage cell_v2 list_hosts:\n${listed}`,
      );
    await new Promise((r) => setTimeout(r, 3000));
  }
}

/**
 * nova-compute keeps its compute node's UUID in <state_path>/compute_id, and a 34.0.0 compute
 * whose service record is new enough refuses to start without it. The lab's driver
 * (fake.FakeDriverWithoutFakeNodes, as a real single-node driver) writes it at first start
 * (nova/virt/node.py get_local_node_uuid); this checks nova did, so an upgrade never starts
 * from a node that would lose its identity. fake.FakeDriver cannot be restarted at all: it
 * draws its node UUID from uuidsentinel, new in every process, and a restarted compute then
 * fails with "Duplicate compute node record found".
 */
export async function checkComputeIds(hosts: NodeRunner[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const h of hosts) {
    const file = join(h.root, 'data', 'nova', 'compute_id');
    while (!existsSync(file)) {
      if (Date.now() > deadline)
        throw new Error(
          `nova-compute on ${h.name} has not written ${file} after ${timeoutMs / 1000} s; see ${join(h.root, 'run', 'devstack@n-cpu.log')}`,
        );
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

export { mariadbFiles };
