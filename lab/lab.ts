// The lab: a local stand-in for the seed's two-node devstack (controller + apicomp, HAProxy
// on a VIP in front of both nova-apis) that the tool can upgrade for real over SSH.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { startHaproxy, haproxyPid, stopHaproxy } from './haproxy';
import { installLab } from './install';
import { labHaproxyConfig } from './haproxyConfig';
import { labInventory, renderLabInventory } from './labInventory';

import { initCloud, ONLINE_MIGRATIONS } from './node/cloud';
import { readJsonOr, writeJson } from './node/env';
import { cellConductorUnit, nodeLayout, stateLayout, type NodeConfig, NOVA_UNITS } from './node/layout';
import { isUnitProcess, readHeartbeat, readUnitFile, unitStatus, type UnitFile } from './node/units';
import { ensureKeyPair, sshdPid, startSshd, stopSshd } from './sshd';
import {
  ADDRESSES_PER_SSHD,
  DEFAULT_FLEET_TIMES,
  fleetEnv,
  fleetSshdPids,
  installFleetBin,
  startFleetSshds,
  stopFleetSshds,
  virtualIndex,
  writeVirtualNode,
  type FleetTimes,
} from './fleet';
import { cpuConf, writeNodeFiles } from './nodeFiles';
import { API_PORT, planTopology, type LabLb, type LabNodePlan } from './topology';
import { waitForBackends } from './haproxySocket';
import {
  backingDirs,
  discoverHosts,
  ensureVenvs,
  labCells,
  prepareRealNode,
  realUnitsFor,
  registerCatalog,
  setUpKeystone,
  setUpNovaCells,
  setUpPlacement,
  startBackingServices,
  checkComputeIds,
} from './real/realLab';
import { stopBacking } from './real/backing';
import { setUpRealTempest } from './real/tempest';
import {
  nodePodmanDir,
  podmanEnv,
  prepareKollaImages,
  startKollaContainers,
  stopKollaBuild,
  stopKollaContainers,
  writeKollaConfigs,
  writeNodePodman,
} from './kolla';

export interface LabOptions {
  stateDir?: string;
  /** Three octets inside 127.0.0.0/8: nodes at .2, .3, …, the VIP at .100. */
  subnet?: string;
  apiNodes?: number;
  computeOnlyNodes?: number;
  lbNodes?: number;
  fromVersion?: string;
  toVersion?: string;
  /** A system sshd may hold port 22 on every address. */
  sshPort?: number;
  /** nova-api's drain time after SIGTERM before in-flight requests are dropped. */
  apiMercySeconds?: number;
  serviceDownSeconds?: number;
  /** Rows each online data migration has left to do when the cloud is first created. */
  pendingMigrations?: Record<string, number>;
  /**
   * standin: the fast lab of lab/node stand-ins. real: nova, placement and keystone from their
   * releases (scripts/openstack-venvs.sh), on MariaDB and RabbitMQ.
   */
  nova?: 'standin' | 'real' | 'kolla';
  /**
   * The scale lab: this many virtual computes (lab/fleet.ts) besides the lab's own nodes, on
   * the /24s after the subnet (127.2.0 → 127.2.1.1 onwards), ceil(N/16) sshds for all of them.
   */
  virtualComputes?: number;
  /** The virtual computes' command times (install, stop, start, heartbeat). */
  fleetTimes?: Partial<FleetTimes>;
  /**
   * The real lab's cells besides cell0: 1 (cell1) or 2 (cell1 and cell2, with cell2's own
   * database, vhost, nova_cell2.conf and conductor on the controller, and a node
   * `cell2-compute1` whose nova-compute is in cell2).
   */
  cells?: number;
}

export type ResolvedLabOptions = Required<LabOptions>;

export interface LabNode extends LabNodePlan {
  root: string;
  apiUrl?: string;
  /** Environment a session on this node gets from sshd; for running node commands locally. */
  env: Record<string, string>;
}

export interface LabInfo {
  stateDir: string;
  inventoryPath: string;
  vipUrl: string;
  privateKeyPath: string;
  knownHostsPath: string;
  binDir: string;
  options: ResolvedLabOptions;
  nodes: LabNode[];
  lbs: Array<LabLb & { dir: string; socket: string; pid: number }>;
  /** Wall time of this labUp call. */
  upMs: number;
}

export const DEFAULT_STATE_DIR = resolve(
  __dirname,
  existsSync(join(__dirname, '..', 'package.json')) ? '..' : join('..', '..'),
  '.state',
  'lab',
);

function resolveOptions(o: LabOptions): ResolvedLabOptions {
  const stateDir = resolve(o.stateDir ?? DEFAULT_STATE_DIR);
  if (o.cells !== undefined && o.cells !== 1 && o.cells !== 2)
    throw new Error(`lab cells must be 1 (cell1) or 2 (cell1 and cell2), not ${o.cells}`);
  if ((o.cells ?? 1) > 1 && o.nova !== 'real')
    throw new Error(`lab cells ${o.cells} needs the real-nova lab (--nova real): the stand-ins know cell1 only`);
  // sshd's SetEnv and the command templates would split a path with spaces.
  if (/[\s"'\\$`]/.test(stateDir))
    throw new Error(`lab state directory must not contain spaces, quotes or shell metacharacters: ${stateDir}`);
  return {
    stateDir,
    subnet: o.subnet ?? '127.0.1',
    apiNodes: o.apiNodes ?? 2,
    computeOnlyNodes: o.computeOnlyNodes ?? 0,
    lbNodes: o.lbNodes ?? 1,
    fromVersion: o.fromVersion ?? (o.nova === 'real' ? '33.0.2' : '30.0.0'),
    toVersion: o.toVersion ?? (o.nova === 'real' ? '34.0.0' : '31.0.0'),
    sshPort: o.sshPort ?? 2222,
    apiMercySeconds: o.apiMercySeconds ?? 10,
    serviceDownSeconds: o.serviceDownSeconds ?? 10,
    pendingMigrations: o.pendingMigrations ?? {
      populate_instance_compute_id: 120,
      populate_dev_uuids: 7,
      populate_user_id: 30,
    },
    nova: o.nova ?? 'standin',
    virtualComputes: o.virtualComputes ?? 0,
    fleetTimes: { ...DEFAULT_FLEET_TIMES, ...o.fleetTimes },
    cells: o.cells ?? 1,
  };
}

function nodeEnvVars(stateDir: string, n: LabNodePlan, nova: ResolvedLabOptions['nova']): Record<string, string> {
  if (n.virtual) return fleetEnv(stateDir, n.name);
  const s = stateLayout(stateDir);
  const root = s.node(n.name);
  // A real node's first PATH entry holds only the systemd/git stand-ins; then its own bin of
  // real programs (nova-manage, nova-status, placement-manage, openstack).
  const path =
    nova === 'real'
      ? `${s.realBin}:${nodeLayout(root).bin}:/usr/local/bin:/usr/bin:/bin`
      : `${s.bin}:/usr/local/bin:/usr/bin:/bin`;
  return {
    PATH: path,
    HOME: root,
    NOVA_LAB_ROOT: root,
    NOVA_LAB_NODE: n.name,
    NOVA_LAB_STATE: stateDir,
    LANG: 'C.UTF-8',
    // The kolla lab's podman: this node's own storage and config (lab/kolla.ts).
    ...(nova === 'kolla' ? podmanEnv(nodePodmanDir(root)) : {}),
  };
}

function describe(o: ResolvedLabOptions): Pick<LabInfo, 'nodes' | 'lbs'> {
  const s = stateLayout(o.stateDir);
  const { nodes, lbs } = planTopology(o);
  return {
    nodes: nodes.map((n) => ({
      ...n,
      ...(o.nova === 'real' ? { units: realUnitsFor(n.roles, o.cells ?? 1) } : {}),
      root: s.node(n.name),
      ...(n.roles.includes('api') ? { apiUrl: `http://${n.address}:${API_PORT}` } : {}),
      env: nodeEnvVars(o.stateDir, n, o.nova),
    })),
    lbs: lbs.map((b) => ({
      ...b,
      dir: s.haproxy(b.node),
      socket: join(s.haproxy(b.node), 'haproxy.sock'),
      pid: haproxyPid(s.haproxy(b.node)) ?? 0,
    })),
  };
}

const run = promisify(execFile);

/** Runs a stand-in on a node without SSH: what labUp uses to start the node's services. */
export async function runOnNode(
  node: Pick<LabNode, 'env'>,
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ stdout: string; stderr: string }> {
  return run(join(node.env.PATH!.split(':')[0]!, cmd), args, {
    env: { ...node.env },
    cwd: node.env.HOME,
    timeout: timeoutMs,
  });
}

/** Brings the lab up, reusing whatever already runs; safe to call again at any time. */
export async function labUp(opts: LabOptions = {}): Promise<LabInfo> {
  const t0 = Date.now();
  const o = resolveOptions(opts);
  const s = stateLayout(o.stateDir);
  const { nodes, lbs } = describe(o);
  const controller = nodes[0]!;
  mkdirSync(o.stateDir, { recursive: true });
  writeJson(s.labJson, o);
  installLab(o.stateDir);
  const key = ensureKeyPair(s.privateKey);

  const real = o.nova === 'real';
  if (real) await ensureVenvs(o.fromVersion, o.toVersion, (l) => process.stderr.write(`${l}\n`));
  const fleet = nodes.filter((n) => n.virtual);
  if (fleet.length) {
    if (o.nova !== 'standin') throw new Error('virtual computes need the stand-in lab (--nova standin)');
    installFleetBin(o.stateDir);
    for (const n of fleet)
      writeVirtualNode(
        o.stateDir,
        n,
        o.fromVersion,
        cpuConf({ root: n.root, address: n.address, controllerAddress: controller.address }),
        { ...DEFAULT_FLEET_TIMES, ...o.fleetTimes },
        o.serviceDownSeconds,
      );
  }
  for (const n of nodes) {
    if (n.virtual) continue;
    const l = nodeLayout(n.root);
    mkdirSync(l.run, { recursive: true });
    const config: NodeConfig = {
      name: n.name,
      address: n.address,
      apiPort: API_PORT,
      units: n.units,
      apiMercySeconds: o.apiMercySeconds,
      serviceDownSeconds: o.serviceDownSeconds,
    };
    if (real) {
      config.real = prepareRealNode({
        stateDir: o.stateDir,
        name: n.name,
        address: n.address,
        roles: n.roles,
        controllerAddress: controller.address,
        apiPort: API_PORT,
        apiMercySeconds: o.apiMercySeconds,
        fromVersion: o.fromVersion,
        toVersion: o.toVersion,
        cells: labCells(o.cells),
        computeCell: n.cell ?? 'cell1',
      });
    } else {
      writeNodeFiles(
        {
          root: n.root,
          name: n.name,
          address: n.address,
          controllerAddress: controller.address,
          isController: n.roles.includes('controller'),
          isCompute: n.roles.includes('compute'),
        },
        o.fromVersion,
      );
    }
    writeJson(l.config, config);
  }
  const kolla = o.nova === 'kolla';
  if (kolla) {
    await prepareKollaImages(o.stateDir, o.subnet, [o.fromVersion, o.toVersion]);
    const ctl = nodeLayout(controller.root);
    const cpu = nodeLayout((nodes.find((n) => n.roles.includes('compute')) ?? controller).root).cpuConf;
    const read = (f: string) => readFileSync(f, 'utf8');
    writeKollaConfigs(o.stateDir, [
      ...['nova-api', 'nova-scheduler', 'nova-metadata', 'nova-super-conductor', 'nova-novncproxy'].map((service) => ({
        service,
        nova: read(ctl.novaConf),
      })),
      { service: 'nova-conductor', nova: read(ctl.cell1Conf) },
      { service: 'nova-compute', nova: read(cpu) },
      {
        service: 'placement-api',
        nova: `[placement_database]\nconnection = mysql+pymysql://root:secret@${controller.address}/placement\n`,
      },
    ]);
    for (const n of nodes) {
      const {
        PATH: _path,
        HOME: _home,
        CONTAINERS_CONF: _c,
        CONTAINERS_STORAGE_CONF: _s,
        CONTAINERS_REGISTRIES_CONF: _r,
        ...env
      } = n.env;
      writeNodePodman(o.stateDir, o.subnet, n.root, env);
    }
  }
  if (!real)
    initCloud(o.stateDir, {
      controller: controller.name,
      computeHosts: nodes.filter((n) => n.roles.includes('compute')).map((n) => n.name),
      release: o.fromVersion,
      // devstack registers nova-api directly; pointing keystone at the VIP is the upgrade's job.
      endpointUrl: `${controller.apiUrl}/v2.1`,
      placementUrl: `http://${controller.address}/placement`,
      pendingMigrations: Object.fromEntries(ONLINE_MIGRATIONS.map((m) => [m, o.pendingMigrations[m] ?? 0])),
    });

  const [sshds, fleetSshds] = await Promise.all([
    Promise.all(
      nodes
        .filter((n) => !n.virtual)
        .map((n) =>
          startSshd({
            name: n.name,
            dir: nodeLayout(n.root).sshd,
            address: n.address,
            port: n.sshPort,
            authorizedKeys: key.publicKey,
            env: n.env,
          }),
        ),
    ),
    startFleetSshds(o.stateDir, fleet, o.sshPort, key.publicKey),
    real ? startBackingServices(o.stateDir, controller.address, labCells(o.cells)) : undefined,
  ]);
  writeFileSync(s.knownHosts, `${[...sshds, ...fleetSshds].map((h) => h.knownHostsLine).join('\n')}\n`);

  if (real) {
    await startRealServices(nodes, controller, labCells(o.cells));
  } else if (kolla) {
    // kolla-ansible's deploy: each node pulls its images and runs its containers.
    await Promise.all(
      nodes
        .filter((n) => n.units.length)
        .map((n) => startKollaContainers(o.stateDir, o.subnet, n.root, n.units, o.fromVersion)),
    );
  } else {
    // One systemctl per node, starting its units in devstack's order; started ones are kept.
    await Promise.all(
      nodes.filter((n) => n.units.length && !n.virtual).map((n) => runOnNode(n, 'systemctl', ['start', ...n.units])),
    );
    // The virtual computes' nova-computes, 16 at a time, without their start time.
    for (let i = 0; i < fleet.length; i += 16)
      await Promise.all(
        fleet
          .slice(i, i + 16)
          .map((n) =>
            runOnNode({ env: { ...n.env, NOVA_LAB_FLEET_NO_DELAY: '1' } }, 'systemctl', ['start', ...n.units]),
          ),
      );
  }

  const apiNodes = nodes.filter((n) => n.roles.includes('api'));
  const started = await Promise.all(
    lbs.map(async (b) => {
      const config = labHaproxyConfig({
        dir: b.dir,
        bind: { address: b.address, port: b.port },
        backend: 'nova-api',
        servers: apiNodes.map((n) => ({ name: n.name, address: n.address, port: API_PORT })),
        ...(o.nova === 'real' ? { checkTimeoutSeconds: 10 } : {}),
      });
      const h = await startHaproxy({ dir: b.dir, config });
      await waitForBackends(
        b.socket,
        'nova-api',
        apiNodes.map((n) => n.name),
        10_000,
      );
      return { ...b, pid: h.pid };
    }),
  );

  writeFileSync(
    s.inventory,
    renderLabInventory(
      labInventory({
        stateDir: o.stateDir,
        fromVersion: o.fromVersion,
        toVersion: o.toVersion,
        sshPort: o.sshPort,
        nodes,
        lbs,
        nova: o.nova,
        subnet: o.subnet,
        cells: o.cells,
      }),
    ),
  );
  return {
    stateDir: o.stateDir,
    inventoryPath: s.inventory,
    vipUrl: `http://${lbs[0]!.address}:${lbs[0]!.port}`,
    privateKeyPath: s.privateKey,
    knownHostsPath: s.knownHosts,
    binDir: s.bin,
    options: o,
    nodes,
    lbs: started,
    upMs: Date.now() - t0,
  };
}

/**
 * The real cloud comes up in devstack's order: keystone and the databases' schemas, then
 * placement and the conductors, the scheduler and the computes, then nova-api; the computes
 * are mapped into their cell once they registered.
 */
async function startRealServices(nodes: LabNode[], controller: LabNode, cells: string[]): Promise<void> {
  const start = (n: LabNode, units: string[]) =>
    runOnNode(n, 'systemctl', ['start', ...units], 300_000).then(() => undefined);
  await Promise.all([
    (async () => {
      await setUpKeystone(controller, controller.address, (units) => start(controller, units));
      await registerCatalog(controller.address, `${controller.apiUrl}/v2.1`);
    })(),
    setUpPlacement(controller),
    setUpNovaCells(controller, controller.address, cells),
  ]);
  await start(controller, [
    NOVA_UNITS.placement,
    NOVA_UNITS.superConductor,
    ...cells.map(cellConductorUnit),
    NOVA_UNITS.scheduler,
  ]);
  await Promise.all(
    nodes.map((n) =>
      start(
        n,
        n.units.filter((u) => u === NOVA_UNITS.compute || u === NOVA_UNITS.api),
      ),
    ),
  );
  const computes = nodes.filter((n) => n.roles.includes('compute'));
  await discoverHosts(
    controller,
    computes.map((n) => n.name),
  );
  await checkComputeIds(computes);
  await setUpRealTempest(controller, controller.address, `${controller.apiUrl}/v2.1`);
}

function readOptions(stateDir: string): ResolvedLabOptions | undefined {
  const o = readJsonOr<ResolvedLabOptions | undefined>(stateLayout(resolve(stateDir)).labJson, undefined);
  return o ? { ...o, stateDir: resolve(stateDir) } : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Pids of live processes whose environment names this lab: every session and service on a node has it. */
function labProcesses(stateDir: string): number[] {
  const marker = `\0NOVA_LAB_STATE=${stateDir}\0`;
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid)
    .map(Number)
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') return false;
        if (`\0${readFileSync(`/proc/${pid}/environ`, 'utf8')}`.includes(marker)) return true;
        // setproctitle (oslo.service's "nova-scheduler: master process") overwrites the
        // environment; a process working in a node root or a backing service's directory is the lab's.
        const cwd = readlinkSync(`/proc/${pid}/cwd`);
        return [join(stateDir, 'nodes'), join(stateDir, 'backing')].some((d) => cwd === d || cwd.startsWith(`${d}/`));
      } catch {
        return false;
      }
    });
}

/** What sessions left running (a detached upgrade step, a hung tempest) goes down with the lab. */
async function sweepSessions(stateDir: string): Promise<void> {
  const signal = (pids: number[], sig: NodeJS.Signals) =>
    pids.forEach((pid) => {
      try {
        process.kill(pid, sig);
      } catch {
        /* already gone */
      }
    });
  signal(labProcesses(stateDir), 'SIGTERM');
  const deadline = Date.now() + 2000;
  while (labProcesses(stateDir).length && Date.now() < deadline) await sleep(25);
  signal(labProcesses(stateDir), 'SIGKILL');
}

/** Stops every process the lab started (services, HAProxy, sshd); the state stays on disk. */
export async function labDown(stateDir: string = DEFAULT_STATE_DIR): Promise<void> {
  const o = readOptions(stateDir);
  if (!o) return;
  const { nodes, lbs } = describe(o);
  const running: Array<{ node: LabNode; unit: string; file: UnitFile }> = [];
  for (const n of nodes) {
    const l = nodeLayout(n.root);
    for (const unit of n.units) {
      const file = readUnitFile({ node: l }, unit);
      if (!file) continue;
      writeJson(l.unitState(unit), { ...file, active: false });
      if (isUnitProcess(file.pid, n.root, unit)) {
        running.push({ node: n, unit, file });
        process.kill(file.pid, 'SIGTERM');
      }
    }
  }
  // Tearing down is not an upgrade: nova-api gets a short grace, not its full mercy.
  const deadline = Date.now() + 3000;
  let left = running;
  while (left.length) {
    left = left.filter((r) => isUnitProcess(r.file.pid, r.node.root, r.unit));
    if (!left.length) break;
    if (Date.now() > deadline) {
      for (const r of left) process.kill(r.file.pid, 'SIGKILL');
    }
    await sleep(25);
  }
  if (o.nova === 'kolla') {
    await Promise.all(nodes.map((n) => stopKollaContainers(n.root)));
    stopKollaBuild(o.stateDir);
  }
  // MariaDB and RabbitMQ get their clean shutdown before the sweep's SIGKILL.
  if (o.nova === 'real') await stopBacking(backingDirs(o.stateDir));
  await sweepSessions(o.stateDir);
  await Promise.all(lbs.map((b) => stopHaproxy(b.dir)));
  for (const n of nodes) stopSshd(nodeLayout(n.root).sshd);
  stopFleetSshds(o.stateDir, o.virtualComputes ?? 0);
  const sshDeadline = Date.now() + 5000;
  while (nodes.some((n) => sshdPid(nodeLayout(n.root).sshd)) && Date.now() < sshDeadline) await sleep(25);
}

export interface LabStatus {
  stateDir: string;
  up: boolean;
  nodes: Array<{
    name: string;
    address: string;
    roles: string[];
    codeVersion: string;
    sshd: number | undefined;
    services: Array<{ unit: string; activeState: string; pid: number; version?: string }>;
  }>;
  haproxy: Array<{ node: string; frontend: string; pid: number | undefined }>;
}

export function labStatus(stateDir: string = DEFAULT_STATE_DIR): LabStatus {
  const o = readOptions(stateDir);
  if (!o) return { stateDir: resolve(stateDir), up: false, nodes: [], haproxy: [] };
  const { nodes, lbs } = describe(o);
  const fleetPids = fleetSshdPids(o.stateDir, o.virtualComputes ?? 0);
  const status: LabStatus = {
    stateDir: o.stateDir,
    up: false,
    nodes: nodes.map((n) => {
      const l = nodeLayout(n.root);
      const config = readJsonOr<NodeConfig>(l.config, {
        name: n.name,
        address: n.address,
        apiPort: API_PORT,
        units: n.units,
        apiMercySeconds: 0,
        serviceDownSeconds: 0,
      });
      const env = { node: l, root: n.root, config };
      return {
        name: n.name,
        address: n.address,
        roles: n.roles,
        codeVersion: existsSync(l.codeVersion) ? readFileSync(l.codeVersion, 'utf8').trim() : 'none',
        sshd: n.virtual ? fleetPids[Math.floor(virtualIndex(n.name) / ADDRESSES_PER_SSHD)] : sshdPid(l.sshd),
        services: n.units.map((unit) => {
          const u = unitStatus(env, unit);
          const hb = u.mainPid ? readHeartbeat(env, unit) : undefined;
          return { unit, activeState: u.activeState, pid: u.mainPid, ...(hb ? { version: hb.version } : {}) };
        }),
      };
    }),
    haproxy: lbs.map((b) => ({ node: b.node, frontend: `${b.address}:${b.port}`, pid: haproxyPid(b.dir) })),
  };
  status.up =
    status.nodes.every((n) => n.sshd && n.services.every((s) => s.activeState === 'active')) &&
    status.haproxy.every((h) => h.pid);
  return status;
}

/** One line of a node's events log: `start devstack@n-api pid=… version=… via=… at=…`. */
export interface LabEvent {
  verb: string;
  unit: string;
  fields: Record<string, string>;
}

export function labEvents(stateDir: string, node: string): LabEvent[] {
  const path = nodeLayout(stateLayout(resolve(stateDir)).node(node)).events;
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [verb = '', unit = '', ...kv] = line.split(' ');
      return {
        verb,
        unit,
        fields: Object.fromEntries(kv.map((p) => [p.slice(0, p.indexOf('=')), p.slice(p.indexOf('=') + 1)])),
      };
    });
}

export { NOVA_UNITS };
export { addOrphanService } from './node/cloud';
export { FAULTS } from './node/layout';
