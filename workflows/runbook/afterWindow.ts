// After the window: every service learns that the last compute is upgraded (SIGHUP re-reads
// [upgrade_levels] compute=auto and lifts the RPC pin), then the data migrations that the new
// release may need before the next one.
import { executeChild, isCancellation, workflowInfo } from '@temporalio/workflow';
import { cmd, computeBatches, hupServices, inventoryForBatch, nodeByName } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { describeFailure } from '../failures';
import { hupComputeBatch } from '../computeBatch';
import { hostList } from '../ops/computes';
import type { RunbookStep } from './types';

export interface AfterWindowOptions {
  /**
   * Since `compute-hup-in-batches`: nova-compute's SIGHUP runs in one child per compute batch,
   * its nodes at once, instead of one parent step per compute (9 parent events per compute,
   * measured at 92 computes; the parent would pass Temporal's 51,200-event limit near 5,500).
   */
  computeHupInBatches?: boolean;
}

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
        const left = batch.nodes.filter((n) => !done.has(n));
        const res = await executeChild(hupComputeBatch, {
          args: [
            {
              inventory: inventoryForBatch(inv, left),
              batch: { index: batch.index, nodes: left },
              batches: batches.length,
            },
          ],
          workflowId: `${workflowInfo().workflowId}/hup-computes-${batch.index}/${key.split('/').pop()}`,
          staticSummary: `SIGHUP nova-compute on batch ${batch.index}/${batches.length}: ${hostList(left)}`,
        });
        for (const n of res.done) done.add(n);
        if (res.failed.length)
          throw new Error(
            `SIGHUP failed on ${res.failed.map((f) => `${f.node}: ${f.error}`).join('; ')}; the other nodes of the batch were HUPed`,
          );
        return { summary: res.summary };
      },
    };
  });
}

export function afterWindowSteps(inv: Inventory, opts: AfterWindowOptions = {}): RunbookStep[] {
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
    hupPerNodeStep(inv, perService),
    ...(opts.computeHupInBatches ? computeHupSteps(inv) : []),
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
