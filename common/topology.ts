// The cloud's shape as the runbook sees it, derived from the inventory: which node is which,
// which services are drained behind HAProxy, which restart in place, how computes are batched.
// Pure, so the dry run, the workflow and the CLI derive the very same answers.
import { DEFAULT_COMMANDS, renderCommand, type CommandName } from '../inventory/commands';
import { compareNovaVersions, releaseOf } from '../inventory/releases';
import type { Inventory, Node, Service } from '../inventory/schema';
import type { LbTarget } from './haproxy';
import { sshTargetFor, type SshTarget } from './sshTarget';

/** One command of the plan, on the node that runs it ('(worker)' for HTTP and socket calls). */
export interface PlannedCommand {
  node: string;
  command: string;
}

export interface ComputeBatch {
  index: number;
  nodes: string[];
  /** The canary batch (compute.canary), before the others. */
  canary?: boolean;
}

/** HTTP services behind HAProxy: drained, restarted and enabled one at a time. */
export interface DrainedService {
  node: string;
  unit: string;
  server: string;
  kind: Service['kind'];
  /** Every backend that routes to the service; haproxy.backend unless the inventory names others. */
  backends: string[];
}

/** A service is drained behind HAProxy if it is nova-api or the inventory gives it a server or backends. */
const isDrained = (s: Service) => s.kind === 'api' || !!s.haproxyServer || !!s.haproxyBackends;

/**
 * After the window nova-compute must re-read `[upgrade_levels] compute = auto`. nova 34.0.0
 * (2026.2 Hibiscus) runs nova-compute on native threads by default (doc/source/admin/
 * concurrency.rst), in the main process (`no_fork`), where oslo.service 4.8.0's threading backend
 * does not reload on SIGHUP: its handler raises SignalExit in the main thread
 * (`ProcessLauncher._reload_service`, "TODO ... implement the restart() method for no_fork").
 * Seen on the real lab: after the SIGHUP the process lived on and kept its heartbeat (the service
 * list said "up"), but dropped every RPC call: the API's `os-hypervisors/<id>/uptime` to it timed
 * out at 60 s. So from 34.0.0 the target's nova-compute is restarted instead, which re-reads the
 * config as a SIGHUP would and is correct in eventlet mode too; the forking services (conductor,
 * scheduler) reload by restarting their workers under cotyledon, and keep the SIGHUP.
 */
export function computeReloadsByRestart(inv: Inventory): boolean {
  return compareNovaVersions(inv.release.to, '34.0.0') >= 0;
}

/** Conductors first: newer services must find conductors that already speak their RPC version. */
export const RESTART_ORDER: Service['kind'][] = ['conductor', 'scheduler', 'metadata', 'console', 'other'];

/** A command template of the inventory, rendered with every value shell-quoted. */
/**
 * The API config file: the inventory's, or the schema's default for a run started before the
 * field existed (its plan must still build on replay).
 */
export function apiConfigOf(inv: Inventory): string {
  const given: string | undefined = inv.apiConfigFile;
  return given ?? '/etc/nova/nova.conf';
}

export function cmd(inv: Inventory, name: CommandName, values: Record<string, string | number> = {}): string {
  // {venv} only with the devstack profile; a run started before profiles has no devstack section and no {venv}.
  const venv: Record<string, string> = inv.devstack ? { venv: inv.devstack.venv } : {};
  // The inventory of a run started before a template existed lacks it: that run gets the default.
  // A run started before profiles also has no {venv}: it gets the default as that release wrote
  // its templates, with the programs found on PATH.
  const template =
    (inv.commands as Partial<Record<CommandName, string>>)[name] ??
    (inv.devstack ? DEFAULT_COMMANDS[name] : DEFAULT_COMMANDS[name].replaceAll('{venv}/bin/', ''));
  return renderCommand(name, template, { osCloud: inv.openstack.osCloud, ...venv, ...values });
}

/** The placement install of the plan: `{series}` is the target release's (placement numbers its own). */
export function placementInstallCommand(inv: Inventory): string {
  return cmd(inv, 'installPlacement', {
    version: inv.release.to,
    series: releaseOf(inv.release.to)?.series ?? inv.release.to,
    node: inv.controller,
  });
}

export function nodeByName(inv: Inventory, name: string): Node {
  const n = inv.nodes.find((x) => x.name === name);
  if (!n) throw new Error(`no node named ${name} in the inventory`);
  return n;
}

export function targetOf(inv: Inventory, name: string): SshTarget {
  return sshTargetFor(inv, nodeByName(inv, name));
}

export function lbNodes(inv: Inventory): Node[] {
  return inv.nodes.filter((n) => n.lb);
}

/** Every LB's runtime socket, as the HAProxy activities reach it. */
export function lbTargets(inv: Inventory): LbTarget[] {
  return lbNodes(inv).map((n) => ({
    node: n.name,
    socket: n.lb!.socket,
    ...(n.lb!.socket.via === 'ssh' ? { ssh: sshTargetFor(inv, n) } : {}),
  }));
}

/**
 * Cells whose nova-manage commands (db sync, online data migrations) run at once on the
 * controller. Each cell is its own database, so one cell's command does not wait on another's;
 * one after another, the default lab's two cells took 4 migration rounds in a row ("cell0 2
 * rounds, cell1 2 rounds", bench/steps.ts). A bound, since each is a nova-manage process of its
 * own on the controller and a cloud may have dozens of cells (CERN reports 75).
 */
export const CELL_COMMANDS_AT_ONCE = 4;

export function isComputeOnly(n: Node): boolean {
  return n.roles.every((r) => r === 'compute');
}

export function computeUnit(n: Node): string {
  return n.services.find((s) => s.kind === 'compute')!.unit;
}

export function drainedServices(inv: Inventory): DrainedService[] {
  return inv.nodes.flatMap((n) =>
    n.services.filter(isDrained).map((s) => ({
      node: n.name,
      unit: s.unit,
      server: s.haproxyServer ?? n.api?.haproxyServer ?? n.name,
      kind: s.kind,
      backends: s.haproxyBackends ?? [inv.haproxy.backend],
    })),
  );
}

/** Services restarted in place in the window: everything but the drained ones and nova-compute. */
export function inPlaceRestarts(inv: Inventory): { node: string; unit: string; kind: Service['kind'] }[] {
  const drained = new Set(drainedServices(inv).map((d) => `${d.node}/${d.unit}`));
  const all = inv.nodes.flatMap((n) =>
    n.services
      .filter((s) => s.kind !== 'compute' && !drained.has(`${n.name}/${s.unit}`))
      .map((s) => ({ node: n.name, unit: s.unit, kind: s.kind })),
  );
  return RESTART_ORDER.flatMap((k) => all.filter((s) => s.kind === k));
}

/** Services that get a SIGHUP after the window: everything that is not drained behind HAProxy. */
export function hupServices(inv: Inventory): { node: string; unit: string }[] {
  return inv.nodes.flatMap((n) => n.services.filter((s) => !isDrained(s)).map((s) => ({ node: n.name, unit: s.unit })));
}

export function computeBatches(inv: Inventory): ComputeBatch[] {
  const excluded = new Set(inv.compute.exclude);
  const computes = inv.nodes.filter(
    (n) => n.services.some((s) => s.kind === 'compute') && !excluded.has(n.name) && !excluded.has(n.novaHost),
  );
  const c = inv.compute;
  const size = countOf(c.batchSize, computes.length, 1);
  // Grouped by cell, AZ or aggregate, in the order each value first appears: no batch mixes two.
  const groups = new Map<string, Node[]>();
  for (const n of computes) {
    const key = c.groupBy ? (n[c.groupBy] ?? '') : '';
    groups.set(key, [...(groups.get(key) ?? []), n]);
  }
  const batches: ComputeBatch[] = [];
  let canary = c.canary ?? 0;
  for (const group of groups.values()) {
    let rest = group;
    if (canary > 0) {
      const first = rest.slice(0, canary);
      batches.push({ index: batches.length + 1, nodes: first.map((n) => n.name), canary: true });
      canary -= first.length;
      rest = rest.slice(first.length);
    }
    for (let i = 0; i < rest.length; i += size) {
      batches.push({ index: batches.length + 1, nodes: rest.slice(i, i + size).map((n) => n.name) });
    }
  }
  return batches;
}

/** A count, or a percent of `total` (rounded down, at least `min`). */
export function countOf(value: number | string, total: number, min: number): number {
  if (typeof value === 'number') return value;
  return Math.max(min, Math.floor((total * Number(value.replace('%', ''))) / 100));
}

/** The failure budget in nodes, or undefined when the inventory sets none. */
export function failureBudget(inv: Inventory): number | undefined {
  const m = inv.compute.maxFailedNodes;
  if (m === undefined) return undefined;
  const total = computeBatches(inv).reduce((n, b) => n + b.nodes.length, 0);
  return countOf(m, total, 0);
}

/**
 * How many nodes of a batch are upgraded at once. 10 unless the inventory says: each node costs
 * a few SSH sessions at a time (detached polls), well inside the pool's worker-wide cap of 256.
 */
export function computeParallel(inv: Inventory): number {
  return inv.compute.parallel ?? 10;
}

/** Only what a compute batch needs, so the child's history does not carry the whole fleet. */
export function inventoryForBatch(inv: Inventory, nodes: string[]): Inventory {
  const keep = new Set([...nodes, inv.controller]);
  return { ...inv, nodes: inv.nodes.filter((n) => keep.has(n.name)) };
}
