// The runbook as data: every step of every phase, with the commands it would run on each host.
// Pure, so the workflow builds its progress from it and `start --dry-run` prints it unchanged.
import { renderCommand, type CommandName } from '../inventory/commands';
import type { Inventory, Node, Service } from '../inventory/schema';
import type { Phase } from './definitions';

export interface PlannedCommand {
  node: string;
  command: string;
}

export interface PlannedStep {
  id: string;
  phase: Phase;
  title: string;
  node?: string;
  commands: PlannedCommand[];
}

export interface ComputeBatch {
  index: number;
  nodes: string[];
}

export const RESTART_ORDER: Service['kind'][] = ['conductor', 'scheduler', 'metadata', 'console', 'other'];

export function cmd(inv: Inventory, name: CommandName, values: Record<string, string | number> = {}): string {
  return renderCommand(name, inv.commands[name], { osCloud: inv.openstack.osCloud, ...values });
}

export function nodeByName(inv: Inventory, name: string): Node {
  const n = inv.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no node named ${name} in the inventory`);
  return n;
}

export function lbNodes(inv: Inventory): Node[] {
  return inv.nodes.filter((n) => n.lb);
}

/** HTTP services behind HAProxy: drained, restarted and enabled one at a time. */
export interface DrainedService {
  node: string;
  unit: string;
  server: string;
}

export function drainedServices(inv: Inventory): DrainedService[] {
  return inv.nodes.flatMap((n) =>
    n.services
      .filter((s) => s.kind === 'api' || s.haproxyServer)
      .map((s) => ({ node: n.name, unit: s.unit, server: s.haproxyServer ?? n.api?.haproxyServer ?? n.name })),
  );
}

/** Services restarted in place in the window: everything but the drained ones and nova-compute. */
export function inPlaceRestarts(inv: Inventory): { node: string; unit: string; kind: Service['kind'] }[] {
  const drained = new Set(drainedServices(inv).map((d) => `${d.node}/${d.unit}`));
  const all = inv.nodes.flatMap((n) =>
    n.services.filter((s) => s.kind !== 'compute' && !drained.has(`${n.name}/${s.unit}`)).map((s) => ({ node: n.name, unit: s.unit, kind: s.kind })),
  );
  // Conductors first: newer services must find conductors that already speak their RPC version.
  return RESTART_ORDER.flatMap((k) => all.filter((s) => s.kind === k));
}

export function computeBatches(inv: Inventory): ComputeBatch[] {
  const excluded = new Set(inv.compute.exclude);
  const computes = inv.nodes.filter((n) => n.services.some((s) => s.kind === 'compute') && !excluded.has(n.name) && !excluded.has(n.novaHost));
  const batches: ComputeBatch[] = [];
  for (let i = 0; i < computes.length; i += inv.compute.batchSize) {
    batches.push({ index: batches.length + 1, nodes: computes.slice(i, i + inv.compute.batchSize).map((n) => n.name) });
  }
  return batches;
}

function runtimeCommand(lb: Node, line: string): PlannedCommand {
  const s = lb.lb!.socket;
  const quoted = `'${line}'`;
  if (s.via === 'ssh') return { node: lb.name, command: `echo ${quoted} | ${s.sudo ? 'sudo ' : ''}socat ${s.path} stdio` };
  if (s.via === 'unix') return { node: '(worker)', command: `${line}  → unix socket ${s.path} (LB ${lb.name})` };
  return { node: '(worker)', command: `${line}  → tcp ${s.host}:${s.port} (LB ${lb.name})` };
}

function onEveryLb(inv: Inventory, line: string): PlannedCommand[] {
  return lbNodes(inv).map((lb) => runtimeCommand(lb, line));
}

const DRAIN_LINE = { weight: 'weight 0', disable: 'state maint', drain: 'state drain' } as const;

export function planUpgrade(inv: Inventory): PlannedStep[] {
  const steps: PlannedStep[] = [];
  const add = (phase: Phase, id: string, title: string, commands: PlannedCommand[], node?: string) => {
    // Progress is keyed by step id; a duplicate would merge two steps' states into one.
    if (steps.some((s) => s.id === id)) throw new Error(`the plan has step ${id} twice`);
    steps.push({ id, phase, title, commands, ...(node ? { node } : {}) });
  };
  const ctl = inv.controller;
  const backend = inv.haproxy.backend;
  const drained = drainedServices(inv);
  const servers = [...new Set(drained.map((d) => d.server))];
  const installPlanned = new Set<string>();
  const addInstall = (phase: Phase, node: string) => {
    if (installPlanned.has(node)) return;
    installPlanned.add(node);
    add(phase, `install-code:${node}`, `install nova ${inv.release.to} on ${node}`, [
      { node, command: cmd(inv, 'codeVersion') },
      { node, command: cmd(inv, 'installCode', { version: inv.release.to, node }) },
    ], node);
  };

  add('before-upgrade', 'check-load-balancers', `check HAProxy on ${lbNodes(inv).map((l) => l.name).join(', ')}`, onEveryLb(inv, 'show stat'));
  add('before-upgrade', 'point-endpoint-at-vip', `point keystone's compute endpoint at ${inv.vip.computeEndpointUrl}`, [
    { node: ctl, command: cmd(inv, 'endpointList') },
    { node: ctl, command: cmd(inv, 'endpointSet', { url: inv.vip.computeEndpointUrl, endpointId: '<id>' }) },
  ], ctl);
  if (inv.tempest.enabled) add('before-upgrade', 'tempest-before', `run tempest on ${inv.tempest.host}`, [{ node: inv.tempest.host, command: cmd(inv, 'tempest') }], inv.tempest.host);
  for (const n of inv.nodes.filter((x) => x.api)) {
    add('before-upgrade', `check-api:${n.name}`, `check nova-api serves on ${n.name}`, [{ node: '(worker)', command: `GET ${n.api!.url}/` }], n.name);
  }

  addInstall('before-window', ctl);
  add('before-window', 'api-db-sync', 'nova-manage api_db sync', [{ node: ctl, command: cmd(inv, 'apiDbSync') }], ctl);
  for (const cell of inv.cells) {
    add('before-window', `db-sync:${cell.name}`, `nova-manage db sync for ${cell.name}`, [{ node: ctl, command: cmd(inv, 'dbSync', { config: cell.configFile, cell: cell.name }) }], ctl);
  }

  add('during-window', 'upgrade-placement', `upgrade placement on ${ctl}`, [{ node: ctl, command: cmd(inv, 'upgradePlacement', { version: inv.release.to, node: ctl }) }], ctl);
  for (const n of inv.nodes.filter((x) => x.configFiles.length && !isComputeOnly(x))) {
    add('during-window', `pin-compute-rpc:${n.name}`, `set [upgrade_levels] compute = auto on ${n.name}`, n.configFiles.map((f) => ({ node: n.name, command: cmd(inv, 'readFile', { path: f }) })), n.name);
  }
  add('during-window', 'upgrade-check', 'nova-status upgrade check', [{ node: ctl, command: cmd(inv, 'upgradeCheck') }], ctl);
  for (const r of inPlaceRestarts(inv)) {
    addInstall('during-window', r.node);
    add('during-window', `restart:${r.node}:${r.unit}`, `restart ${r.unit} on ${r.node}`, [
      { node: r.node, command: cmd(inv, 'serviceRestart', { unit: r.unit, node: r.node }) },
    ], r.node);
  }
  const batches = computeBatches(inv);
  for (const b of batches) {
    const computeCommands = b.nodes.flatMap((name) => {
      const n = nodeByName(inv, name);
      const unit = n.services.find((s) => s.kind === 'compute')!.unit;
      return [
        { node: ctl, command: cmd(inv, 'computeServiceDisable', { host: n.novaHost, reason: `nova-upgrade to ${inv.release.to}` }) },
        ...(isComputeOnly(n) ? n.configFiles.map((f) => ({ node: name, command: cmd(inv, 'readFile', { path: f }) })) : []),
        { node: name, command: cmd(inv, 'installCode', { version: inv.release.to, node: name }) },
        { node: name, command: cmd(inv, 'serviceStop', { unit, node: name }) },
        { node: name, command: cmd(inv, 'serviceStart', { unit, node: name }) },
        { node: ctl, command: cmd(inv, 'computeServiceEnable', { host: n.novaHost }) },
      ];
    });
    add('during-window', `compute-batch:${b.index}`, `upgrade nova-compute batch ${b.index}/${batches.length} (${b.nodes.join(', ')})`, computeCommands);
  }
  if (inv.tempest.enabled) add('during-window', 'tempest-after-computes', `run tempest on ${inv.tempest.host}`, [{ node: inv.tempest.host, command: cmd(inv, 'tempest') }], inv.tempest.host);
  add('during-window', 'record-weights', `record the weight of ${servers.join(', ')} on every LB`, onEveryLb(inv, 'show servers state'));
  if (inv.tempest.enabled) add('during-window', 'tempest-during-api', `run tempest on ${inv.tempest.host} while nova-api restarts`, [{ node: inv.tempest.host, command: cmd(inv, 'tempest') }], inv.tempest.host);
  const monotonic = inv.haproxy.switchover === 'monotonic';
  drained.forEach((d, i) => {
    const n = nodeByName(inv, d.node);
    const drainAlready = monotonic && i > 0;
    if (!drainAlready) add('during-window', `drain:${d.server}`, `drain ${d.server} on every LB`, onEveryLb(inv, `set server ${backend}/${d.server} ${DRAIN_LINE[inv.haproxy.drainMode]}`), d.node);
    add('during-window', `wait-sessions:${d.server}`, `wait until ${d.server} has no sessions`, onEveryLb(inv, 'show stat'), d.node);
    addInstall('during-window', n.name);
    add('during-window', `restart:${d.node}:${d.unit}`, `restart ${d.unit} on ${d.node}`, [{ node: d.node, command: cmd(inv, 'serviceRestart', { unit: d.unit, node: d.node }) }], d.node);
    add('during-window', `check-api-version:${d.server}`, `check ${d.server} serves nova ${inv.release.to} on its own address`, [{ node: '(worker)', command: `GET ${n.api?.url ?? n.address}/` }], d.node);
    if (monotonic && i === 0 && drained.length > 1) {
      add('during-window', 'switch-over', `enable ${d.server} and drain ${drained.slice(1).map((x) => x.server).join(', ')} in one exchange`, onEveryLb(inv, `set server ${backend}/${d.server} state ready; ...`));
    } else {
      add('during-window', `enable:${d.server}`, `enable ${d.server} on every LB`, onEveryLb(inv, `set server ${backend}/${d.server} state ready`), d.node);
    }
    add('during-window', `wait-up:${d.server}`, `wait until every LB reports ${d.server} UP`, onEveryLb(inv, 'show stat'), d.node);
  });
  if (inv.probe.enabled) add('during-window', 'vip-probe-result', `check what API clients saw through ${inv.vip.url}`, [{ node: '(worker)', command: `GET ${inv.vip.url}{${inv.probe.paths.join(',')}} at ${inv.probe.ratePerSecond}/s` }]);

  for (const n of inv.nodes) {
    for (const s of n.services.filter((x) => x.kind !== 'api' && !x.haproxyServer)) {
      add('after-window', `hup:${n.name}:${s.unit}`, `SIGHUP ${s.unit} on ${n.name}`, [{ node: n.name, command: cmd(inv, 'serviceHup', { unit: s.unit, node: n.name }) }], n.name);
    }
  }
  add('after-window', 'check-orphans', 'check the service list for orphaned records', [{ node: ctl, command: cmd(inv, 'serviceList') }], ctl);
  add('after-window', 'online-migrations', 'nova-manage db online_data_migrations until done', [{ node: ctl, command: cmd(inv, 'onlineDataMigrations', { maxCount: 1000 }) }], ctl);
  return steps;
}

export function isComputeOnly(n: Node): boolean {
  return n.roles.every((r) => r === 'compute');
}
