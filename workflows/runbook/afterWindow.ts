// After the window: every service learns that the last compute is upgraded (SIGHUP re-reads
// [upgrade_levels] compute=auto and lifts the RPC pin), then the data migrations that the new
// release may need before the next one.
import { executeChild, isCancellation, workflowInfo } from '@temporalio/workflow';
import {
  cmd,
  computeBatches,
  computeReloadsByRestart,
  hupServices,
  inventoryForBatch,
  nodeByName,
  type ComputeBatch,
} from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { describeFailure } from '../failures';
import { hupComputeBatch, type HupComputeBatchResult } from '../computeBatch';
import { forEachLimit } from '../limit';
import { hostList } from '../ops/computes';
import type { PlanOptions, RunbookStep } from './types';

/** The patch that replaced one SIGHUP step per service with one step for all, node by node at once. */
export const HUP_PER_NODE = 'hup-per-node';

/**
 * Every service that is not in a compute batch's own SIGHUP: one exchange per node, all nodes at
 * once. A node that fails is named; the others keep their HUP, and a retry sends only the rest.
 */
function hupPerNodeStep(inv: Inventory, services: { node: string; unit: string }[]): RunbookStep {
  const byNode = new Map<string, string[]>();
  for (const { node, unit } of services) byNode.set(node, [...(byNode.get(node) ?? []), unit]);
  const done = new Set<string>();
  return {
    id: 'hup-services',
    phase: 'after-window',
    title: `SIGHUP nova's services, one exchange per node, all nodes at once (${[...byNode]
      .map(([node, units]) => `${node}: ${units.length}`)
      .join(', ')})`,
    commands: services.map(({ node, unit }) => ({ node, command: cmd(inv, 'serviceHup', { unit, node }) })),
    patch: HUP_PER_NODE,
    run: async (rt) => {
      // A run that replayed some of the retired per-service steps already HUPed those units.
      const hupedBefore = (node: string, unit: string) =>
        rt.state.stepIfKnown(`hup:${node}:${unit}`)?.status === 'succeeded';
      const left = [...byNode]
        .map(
          ([node, units]) => [node, units.filter((u) => !done.has(`${node}/${u}`) && !hupedBefore(node, u))] as const,
        )
        .filter(([, units]) => units.length);
      const failed: string[] = [];
      await Promise.all(
        left.map(async ([node, units]) => {
          try {
            await rt.ops.services.hupServices(node, units);
            for (const u of units) done.add(`${node}/${u}`);
          } catch (err) {
            if (isCancellation(err)) throw err;
            failed.push(`${node}: ${describeFailure(err)}`);
          }
        }),
      );
      if (failed.length) throw new Error(`SIGHUP failed on ${failed.join('; ')}; the other nodes were HUPed`);
      const sent = left.map(([node, units]) => `${node} (${units.join(', ')})`);
      return { summary: sent.length ? `sent HUP on ${sent.join('; ')}` : 'every service was HUPed already' };
    },
  };
}

/**
 * One compute batch's SIGHUP child, for the nodes of `batch` not in `done` (HUPed by an earlier
 * attempt); adds the nodes it HUPed to `done`. The child's id carries the attempt's key.
 */
async function hupBatchChild(
  inv: Inventory,
  batch: ComputeBatch,
  batches: number,
  done: Set<string>,
  key: string,
): Promise<HupComputeBatchResult> {
  const left = batch.nodes.filter((n) => !done.has(n));
  const res = await executeChild(hupComputeBatch, {
    args: [{ inventory: inventoryForBatch(inv, left), batch: { index: batch.index, nodes: left }, batches }],
    workflowId: `${workflowInfo().workflowId}/hup-computes-${batch.index}/${key.split('/').pop()}`,
    staticSummary: `SIGHUP nova-compute on batch ${batch.index}/${batches}: ${hostList(left)}`,
  });
  for (const n of res.done) done.add(n);
  return res;
}

/** One step per compute batch, each a child that SIGHUPs the batch's nova-computes at once. */
function computeHupSteps(inv: Inventory): RunbookStep[] {
  const batches = computeBatches(inv);
  return batches.map((batch): RunbookStep => {
    const nodes = batch.nodes.map((name) => nodeByName(inv, name));
    // Nodes HUPed by an earlier attempt: an operator's retry HUPs only the others.
    const done = new Set<string>();
    return {
      id: `hup-computes:${batch.index}`,
      phase: 'after-window',
      title: `SIGHUP nova-compute on batch ${batch.index}/${batches.length} (${hostList(batch.nodes)})`,
      commands: nodes.flatMap((n) =>
        n.services
          .filter((s) => s.kind === 'compute')
          .map((s) => ({ node: n.name, command: cmd(inv, 'serviceHup', { unit: s.unit, node: n.name }) })),
      ),
      run: async (_rt, key) => {
        const res = await hupBatchChild(inv, batch, batches.length, done, key);
        if (res.failed.length)
          throw new Error(
            `SIGHUP failed on ${res.failed.map((f) => `${f.node}: ${f.error}`).join('; ')}; the other nodes of the batch were HUPed`,
          );
        return { summary: res.summary };
      },
    };
  });
}

/**
 * How many compute batches' SIGHUP children run at once. Each HUPs its batch's nodes at once (up
 * to the batch's parallelism), so 2 children of 50-node batches are 100 HUP activities: half the
 * worker's activity slots (maxConcurrentActivityTaskExecutions 200, worker/main.ts), leaving room
 * for the probe and other upgrades, paced by the SSH pool's 8 concurrent handshakes. One after
 * another, the 20 batches of 1,000 computes were 20 child round trips in sequence (0.27 s each
 * on the quiet default lab, bench/steps.ts, plus each batch's slowest HUP).
 */
const HUP_CHILDREN_AT_ONCE = 2;

/**
 * Every SIGHUP of the after-window in one runbook line, all at once: one exchange per node for
 * the services outside the compute batches, one child per compute batch for nova-compute. A node
 * that fails is named (with its batch); the others keep their HUP, and a retry HUPs only the rest.
 */
function hupAllStep(inv: Inventory, services: { node: string; unit: string }[]): RunbookStep {
  // nova-compute outside the batches (an excluded compute) is restarted too where a SIGHUP
  // would stop its RPC server (computeReloadsByRestart); the batches' children decide the same.
  const byRestart = computeReloadsByRestart(inv);
  const isCompute = ({ node, unit }: { node: string; unit: string }) =>
    nodeByName(inv, node).services.some((x) => x.unit === unit && x.kind === 'compute');
  const restarts = byRestart ? services.filter(isCompute) : [];
  const hups = services.filter((x) => !restarts.includes(x));
  const byNode = new Map<string, string[]>();
  for (const { node, unit } of hups) byNode.set(node, [...(byNode.get(node) ?? []), unit]);
  const batches = computeBatches(inv);
  const done = new Set<string>();
  const computesDone = new Set<string>();
  const computes = batches.reduce((n, b) => n + b.nodes.length, 0);
  const computeCommand = (node: string, unit: string) =>
    cmd(inv, byRestart ? 'serviceRestart' : 'serviceHup', { unit, node });
  return {
    id: 'hup-all',
    phase: 'after-window',
    title: `SIGHUP every nova service at once: one exchange per node (${[...byNode]
      .map(([node, units]) => `${node}: ${units.length}`)
      .join(', ')}), nova-compute on ${computes} node(s) in ${batches.length} batch(es)${
      byRestart ? `, nova-compute restarted instead (nova ${inv.release.to} does not reload it on SIGHUP)` : ''
    }`,
    commands: [
      ...hups.map(({ node, unit }) => ({ node, command: cmd(inv, 'serviceHup', { unit, node }) })),
      ...restarts.map(({ node, unit }) => ({ node, command: computeCommand(node, unit) })),
      ...batches.flatMap((b) =>
        b.nodes.flatMap((name) => {
          const n = nodeByName(inv, name);
          return n.services
            .filter((x) => x.kind === 'compute')
            .map((x) => ({ node: n.name, command: computeCommand(n.name, x.unit) }));
        }),
      ),
    ],
    run: async (rt, key) => {
      const failed: string[] = [];
      const sent: string[] = [];
      const nodes = [...byNode]
        .map(([node, units]) => [node, units.filter((u) => !done.has(`${node}/${u}`))] as const)
        .filter(([, units]) => units.length);
      const restartsLeft = restarts.filter(({ node, unit }) => !done.has(`${node}/${unit}`));
      const batchesLeft = batches.filter((b) => b.nodes.some((n) => !computesDone.has(n)));
      await Promise.all([
        ...nodes.map(async ([node, units]) => {
          try {
            await rt.ops.services.hupServices(node, units);
            for (const u of units) done.add(`${node}/${u}`);
            sent.push(`HUP on ${node} (${units.join(', ')})`);
          } catch (err) {
            if (isCancellation(err)) throw err;
            failed.push(`${node}: ${describeFailure(err)}`);
          }
        }),
        ...restartsLeft.map(async ({ node, unit }) => {
          try {
            await rt.ops.services.restartServiceChecked(node, unit, `${key}/${node}/${unit}`);
            done.add(`${node}/${unit}`);
            sent.push(`restarted ${unit} on ${node}`);
          } catch (err) {
            if (isCancellation(err)) throw err;
            failed.push(`${node}: ${describeFailure(err)}`);
          }
        }),
        forEachLimit(batchesLeft, HUP_CHILDREN_AT_ONCE, async (b) => {
          const res = await hupBatchChild(inv, b, batches.length, computesDone, key);
          if (res.done.length) sent.push(`${res.summary} (batch ${b.index})`);
          for (const f of res.failed) failed.push(`${f.node} (batch ${b.index}): ${f.error}`);
        }),
      ]);
      if (failed.length)
        throw new Error(
          `${byRestart ? 'SIGHUP or restart' : 'SIGHUP'} failed on ${failed.join('; ')}; every other service was done, and a retry does only these`,
        );
      return { summary: sent.length ? sent.join('; ') : 'every service was HUPed already' };
    },
  };
}

export function afterWindowSteps(inv: Inventory, opts: PlanOptions = {}): RunbookStep[] {
  const ctl = inv.controller;
  const phase = 'after-window';
  // Only the batches' computes move into children; an excluded compute keeps its own step.
  const inBatches = new Set(computeBatches(inv).flatMap((b) => b.nodes));
  const computeUnits = new Set(
    inv.nodes
      .filter((n) => inBatches.has(n.name))
      .flatMap((n) => n.services.filter((s) => s.kind === 'compute').map((s) => `${n.name}/${s.unit}`)),
  );
  const perService = opts.computeHupInBatches
    ? hupServices(inv).filter(({ node, unit }) => !computeUnits.has(`${node}/${unit}`))
    : hupServices(inv);
  return [
    // Retired by hup-per-node: one step per service, one after another (5 on devstack's controller).
    ...perService.map(({ node, unit }): RunbookStep => ({
      id: `hup:${node}:${unit}`,
      phase,
      title: `SIGHUP ${unit} on ${node}`,
      node,
      commands: [{ node, command: cmd(inv, 'serviceHup', { unit, node }) }],
      retiredBy: HUP_PER_NODE,
      run: (rt) => rt.ops.services.hupService(node, unit),
    })),
    ...(opts.hupsAtOnce && opts.computeHupInBatches
      ? [hupAllStep(inv, perService)]
      : [hupPerNodeStep(inv, perService), ...(opts.computeHupInBatches ? computeHupSteps(inv) : [])]),
    // An orphaned record (a host renamed or gone) keeps the RPC version pinned: the operator removes it.
    {
      id: 'check-orphans',
      phase,
      title: 'check the service list for orphaned records',
      node: ctl,
      commands: [{ node: ctl, command: cmd(inv, 'serviceList') }],
      run: async (rt) => {
        const r = await rt.ops.computes.findOrphanedServices();
        if (r.orphans.length) {
          const list = r.orphans.map((o) => `${o.binary} on ${o.host} (id ${o.id}, ${o.reason})`).join('; ');
          throw new Error(
            `orphaned service records: ${list}; remove them with "openstack compute service delete <id>" and retry`,
          );
        }
        return r;
      },
    },
    // In every cell, each with its own config, until exit 0: 1 means more to do, 2 a failed
    // migration (held with its table), 127 bad input.
    {
      id: 'online-migrations',
      phase,
      title: 'nova-manage db online_data_migrations until done, in every cell',
      node: ctl,
      commands: inv.cells.map((c) => ({
        node: ctl,
        command: cmd(inv, 'onlineDataMigrations', {
          maxCount: 1000,
          apiConfig: inv.apiConfigFile,
          config: c.configFile,
          cell: c.name,
        }),
      })),
      run: (rt, key) => rt.ops.nova.runOnlineDataMigrations(key),
    },
  ];
}
