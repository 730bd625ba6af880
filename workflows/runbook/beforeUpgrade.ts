// Before the upgrade: prove the cloud is healthy and reached through the VIP, so that whatever
// fails later is the upgrade's doing. Nothing here changes code or databases.
import { ActivityFailure, ApplicationFailure, isCancellation, patched } from '@temporalio/workflow';
import { refusalSentence, type NodeAccessRefusal } from '../../common/nodeAccess';
import type { Outcome } from '../../common/messages';
import { apiConfigOf, cmd, drainedServices, lbNodes } from '../../common/topology';
import { SERVICE_VERSION_ALIASES, releaseOf } from '../../inventory/releases';
import type { Inventory, Node } from '../../inventory/schema';
import { AbortRequested, describeFailure } from '../failures';
import { forEachLimit } from '../limit';
import { hostList } from '../ops/computes';
import { onEveryLb } from './lbCommands';
import type { RunbookStep, RunContext } from './types';

/** The patch that moved the endpoint change out of the checks into before-window. */
export const ENDPOINT_IS_A_CHANGE = 'endpoint-is-a-change';

/**
 * The seed: clients must reach nova through the VIP, or draining a server hides nothing. Changes
 * only the inventory's region and interfaces, to exactly the inventory's URL. The old URL cannot
 * be read offline, so the plan says where it will be recorded: the step's summary, when it runs.
 */
export function endpointStep(inv: Inventory, id: string, phase: RunbookStep['phase']): RunbookStep {
  const ctl = inv.controller;
  const url = inv.vip.computeEndpointUrl;
  const interfaces = inv.vip.computeEndpointInterfaces ?? ['public'];
  const region = inv.openstack.region;
  const where = region ? `region ${region}` : "the catalog's only region";
  return {
    id,
    phase,
    title: `change keystone's ${interfaces.join(', ')} compute endpoint in ${where} to ${url} (the old URL is read and recorded in this step's summary when it runs)`,
    node: ctl,
    commands: [
      { node: ctl, command: cmd(inv, 'endpointList') },
      ...interfaces.map((i) => ({
        node: ctl,
        command: cmd(inv, 'endpointSet', {
          url,
          endpointId: `<id of the ${i} compute endpoint in ${region ?? 'the only region'}>`,
        }),
      })),
    ],
    run: (rt) => rt.ops.nova.pointComputeEndpointAtVip(),
  };
}

export function beforeUpgradeSteps(inv: Inventory): RunbookStep[] {
  const phase = 'before-upgrade';
  const drained = drainedServices(inv);
  const backend = inv.haproxy.backend;
  const servers = drained.filter((d) => d.backends.includes(backend)).map((d) => d.server);
  // Backends of their own (nova-metadata): each checked for its servers too.
  const others = [...new Set(drained.flatMap((d) => d.backends))]
    .filter((b) => b !== backend)
    .map((b) => ({ backend: b, servers: drained.filter((d) => d.backends.includes(b)).map((d) => d.server) }));
  const steps: RunbookStep[] = [
    // Every API server must be present and UP, and the socket at level admin, before any drain.
    {
      id: 'check-load-balancers',
      phase,
      title: `check HAProxy on ${lbNodes(inv)
        .map((l) => l.name)
        .join(', ')}`,
      commands: onEveryLb(inv, 'show stat'),
      run: async (rt) => {
        const out = await rt.ops.haproxy.checkLoadBalancers(servers);
        const more = [];
        for (const o of others) more.push(await rt.ops.haproxy.checkLoadBalancers(o.servers, o.backend));
        return { summary: [out, ...more].map((r) => r.summary).join('; ') };
      },
    },
    // Retired: pointing the endpoint changes keystone's catalog, so it is no check; it is now
    // change-compute-endpoint, the first change of before-window. Runs started earlier replay it here.
    { ...endpointStep(inv, 'point-endpoint-at-vip', phase), retiredBy: ENDPOINT_IS_A_CHANGE },
  ];
  // A baseline: a test that already fails before the upgrade is not the upgrade's fault.
  if (inv.tempest.enabled) {
    steps.push({
      id: 'tempest-before',
      phase,
      title: `run tempest on ${inv.tempest.host}`,
      node: inv.tempest.host,
      commands: [{ node: inv.tempest.host, command: cmd(inv, 'tempest') }],
      run: (rt, key) => rt.ops.tempest.runTempest(key),
    });
  }
  const apiNodes = inv.nodes.filter((x) => x.api);
  for (const n of apiNodes) {
    steps.push({
      id: `check-api:${n.name}`,
      phase,
      title: `check nova-api serves on ${n.name}`,
      node: n.name,
      commands: [{ node: '(worker)', command: `GET ${n.api!.url}/` }],
      retiredBy: API_CHECKS_AT_ONCE,
      run: (rt) => rt.ops.http.checkApiServesVersion(n.name),
    });
  }
  // The same reads, every node at once: they are independent, so the wall is the slowest one's.
  const done = new Set<string>();
  steps.push({
    id: 'check-api-servers',
    phase,
    title: `check nova-api serves on ${apiNodes.map((n) => n.name).join(', ')}, all at once`,
    commands: apiNodes.map((n) => ({ node: '(worker)', command: `GET ${n.api!.url}/` })),
    patch: API_CHECKS_AT_ONCE,
    run: async (rt) => {
      const left = apiNodes.filter(
        (n) => !done.has(n.name) && rt.state.stepIfKnown(`check-api:${n.name}`)?.status !== 'succeeded',
      );
      const failed: string[] = [];
      const served: string[] = [];
      await Promise.all(
        left.map(async (n) => {
          try {
            served.push((await rt.ops.http.checkApiServesVersion(n.name)).summary);
            done.add(n.name);
          } catch (err) {
            if (isCancellation(err)) throw err;
            failed.push(`${n.name}: ${describeFailure(err)}`);
          }
        }),
      );
      if (failed.length)
        throw new Error(
          `nova-api does not serve on ${failed.join('; ')}${served.length ? `; ${served.join('; ')}` : ''}`,
        );
      return { summary: served.length ? served.sort().join('; ') : 'every nova-api was checked already' };
    },
  });
  return steps;
}

/** The patch that checks every nova-api in one step, all at once, instead of one step per node. */
export const API_CHECKS_AT_ONCE = 'api-checks-at-once';

/**
 * The patch that checks the nodes in chunks of NODE_ACCESS_CHUNK, NODE_ACCESS_AT_ONCE calls at a
 * time, instead of one activity for the whole inventory, whose input and result grew with every
 * node (27.9 KiB / 47.6 KiB at 100 computes, past Temporal's 2 MiB near 4,500).
 */
export const NODE_ACCESS_IN_CHUNKS = 'node-access-in-chunks';
/**
 * Nodes per call: an input of ~280 bytes a node (its SSH target) stays near 56 KiB, and a call
 * checks its nodes 16 at a time, so 200 take ~13 rounds of a login (~1-2 s on the lab).
 */
export const NODE_ACCESS_CHUNK = 200;
/** Calls at once: 4 × 16 logins in flight, under the pool's global cap on handshakes. */
export const NODE_ACCESS_AT_ONCE = 4;

/** Added after 0.1.0: runs started on 0.1.0 replay without it. */
export function nodeAccessStep(inv: Inventory, sudoNodes: string[]): RunbookStep {
  const sudo = new Set(sudoNodes);
  return {
    id: 'check-node-access',
    phase: 'before-upgrade',
    // At most 20 names: at fleet size every compute uses sudo, and the title is in the progress.
    title: `log in to every node${sudoNodes.length ? `; password-less sudo on ${hostList(sudoNodes, 20)}` : ''}`,
    commands: inv.nodes.flatMap((n) => [
      { node: n.name, command: 'id -un' },
      ...(sudo.has(n.name) ? [{ node: n.name, command: 'sudo -n true' }] : []),
    ]),
    patch: 'node-access-preflight',
    run: (rt) =>
      patched(NODE_ACCESS_IN_CHUNKS) ? checkNodesInChunks(rt, sudo) : rt.ops.ssh.checkNodesAccess(sudoNodes),
  };
}

/** The per-node refusals a failed chunk carried in its failure's details, if any. */
function refusalsOf(err: unknown): NodeAccessRefusal[] | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : undefined;
  if (!(cause instanceof ApplicationFailure)) return undefined;
  const d: unknown = cause.details?.[0];
  if (typeof d !== 'object' || d === null || !('refused' in d) || !Array.isArray(d.refused)) return undefined;
  return (d.refused as unknown[]).filter(
    (r): r is NodeAccessRefusal =>
      typeof r === 'object' && r !== null && 'node' in r && 'error' in r && typeof r.error === 'string',
  );
}

/**
 * Every node is checked before anything changes, every chunk to its end (a refusal in one does
 * not hide another's), and the step fails naming each refused node and what failed, in the
 * sentence the one-activity preflight used.
 */
async function checkNodesInChunks(rt: RunContext, sudo: ReadonlySet<string>): Promise<Outcome> {
  const nodes = rt.inv.nodes;
  const chunks: Node[][] = [];
  for (let i = 0; i < nodes.length; i += NODE_ACCESS_CHUNK) chunks.push(nodes.slice(i, i + NODE_ACCESS_CHUNK));
  const refused: NodeAccessRefusal[] = [];
  // A call that failed without naming its nodes (a timeout): each of its nodes is unchecked.
  const unchecked: NodeAccessRefusal[] = [];
  let uncheckedNodes = 0;
  let checked = 0;
  let sudoChecked = 0;
  const users = new Set<string>();
  await forEachLimit(
    chunks.map((c, i) => ({ c, i })),
    NODE_ACCESS_AT_ONCE,
    async ({ c, i }) => {
      const first = i * NODE_ACCESS_CHUNK + 1;
      const label =
        chunks.length === 1
          ? `every node (${nodes.length})`
          : `nodes ${first}-${first + c.length - 1} of ${nodes.length} (${c[0]!.name} … ${c[c.length - 1]!.name})`;
      try {
        const r = await rt.ops.ssh.checkNodesAccessChunk(c, sudo, label);
        checked += r.checked;
        sudoChecked += r.sudo;
        for (const u of r.loginUsers) users.add(u);
        refused.push(...r.refused);
      } catch (err) {
        if (isCancellation(err)) throw err;
        const named = refusalsOf(err);
        if (named) refused.push(...named);
        else {
          unchecked.push({ node: label, error: `${label} could not be checked: ${describeFailure(err)}` });
          uncheckedNodes += c.length;
        }
      }
    },
  );
  if (refused.length || unchecked.length)
    throw ApplicationFailure.create({
      type: 'SshNodeAccessRefused',
      message: refusalSentence(
        [...refused.sort((a, b) => a.node.localeCompare(b.node)), ...unchecked],
        nodes.length,
        refused.length + uncheckedNodes,
      ),
    });
  return {
    summary: `logged in to all ${checked} node(s) as ${[...users].sort().join(', ')}${chunks.length > 1 ? ` in ${chunks.length} calls of up to ${NODE_ACCESS_CHUNK}` : ''}; sudo works without a password on the ${sudoChecked} that use it`,
  };
}

/**
 * Added after 0.2.x: nova's cell mappings against the inventory's cells, before anything changes.
 * Runs started earlier replay without it.
 */
export function cellsStep(inv: Inventory): RunbookStep {
  const ctl = inv.controller;
  return {
    id: 'check-cells',
    phase: 'before-upgrade',
    title: `check that nova's cells are the inventory's (${inv.cells.map((c) => c.name).join(', ')})`,
    node: ctl,
    commands: [{ node: ctl, command: cmd(inv, 'cellList') }],
    patch: 'cells-from-nova',
    run: (rt) => rt.ops.nova.checkCells(),
  };
}

/** The patch that added the service-version preflight: runs started earlier replay without it. */
export const SERVICE_VERSIONS_PREFLIGHT = 'service-versions-preflight';

/**
 * Added after 0.2.x: every cell's services rows against release.to's envelope, before anything
 * changes. A compute older than the envelope holds the start (retry once it is upgraded or its
 * record deleted, or abort; nothing to skip past: nova's control services would refuse to start).
 * Down records of hosts the inventory lacks keep the compute RPC pinned after the run: they are
 * listed and held for the operator, whose `delete-records` deletes them (each still there and
 * still down) and reads again; `skip` keeps them. Never deleted without that choice.
 */
export function serviceVersionsStep(inv: Inventory): RunbookStep {
  const ctl = inv.controller;
  const id = 'check-service-versions';
  // The plan of any inventory (a replayed run's included) must build, so no throwing lookup here.
  const target = releaseOf(inv.release.to);
  const alias = target?.oldestSupported;
  const oldest = alias ? SERVICE_VERSION_ALIASES[alias] : undefined;
  const envelope = alias && oldest !== undefined ? ` down to ${oldest} (${alias})` : '';
  return {
    id,
    phase: 'before-upgrade',
    title: `check every cell's service versions: nova ${inv.release.to} starts beside computes${envelope}; list down records that would keep the compute RPC pinned`,
    node: ctl,
    commands: [
      {
        node: ctl,
        command: cmd(inv, 'serviceVersions', {
          script: '<read the services rows of every cell through nova.db (common/serviceRowsScript.ts)>',
          apiConfig: apiConfigOf(inv),
        }),
      },
      {
        node: ctl,
        command: cmd(inv, 'computeServiceDelete', {
          id: '<uuid of each down record listed, only when the operator answers the hold with delete-records>',
        }),
      },
    ],
    patch: SERVICE_VERSIONS_PREFLIGHT,
    choices: ['retry', 'abort'],
    run: async (rt) => {
      for (;;) {
        const r = await rt.ops.nova.checkServiceVersions();
        const orphans = r.report.pinning.filter((f) => f.reason === 'not-in-inventory' && f.state === 'down');
        const warnings = rt.state.progress.warnings;
        for (const f of r.report.pinning.filter((x) => !orphans.includes(x)))
          if (!warnings.includes(f.sentence)) warnings.push(f.sentence);
        if (!orphans.length) return { summary: r.summary };
        const decision = await rt.hold!(
          id,
          `${orphans.map((f) => f.sentence).join('; ')}. Answer delete-records to delete ${orphans.length === 1 ? 'it' : 'them'} (each only if still down), skip to keep ${orphans.length === 1 ? 'it' : 'them'}, or abort`,
          ['delete-records', 'skip', 'abort'],
        );
        if (decision.action === 'abort') throw new AbortRequested(decision.by, decision.reason);
        if (decision.action === 'skip') {
          const kept = `kept on ${decision.by}'s word${decision.reason ? ` (${decision.reason})` : ''}: ${orphans.map((f) => `${f.binary} on ${f.host} (${f.cell}, ${f.ref})`).join('; ')}`;
          warnings.push(`service records ${kept}`);
          return { summary: `${r.summary}; ${kept}` };
        }
        const del = await rt.ops.nova.deleteServiceRecords(
          orphans.map((f) => ({ ref: f.ref, host: f.host, binary: f.binary, cell: f.cell })),
        );
        warnings.push(`on ${decision.by}'s word, ${del.summary}`);
      }
    },
  };
}
