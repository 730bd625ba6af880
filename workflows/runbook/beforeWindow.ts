// Before the window: the new code on the controller and the schema migrations, which nova
// keeps additive so the old services run on the new schema (nova's upgrade guide).
import { CELL_COMMANDS_AT_ONCE, cmd } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { ENDPOINT_IS_A_CHANGE, endpointStep } from './beforeUpgrade';
import { runPartsAtOnce } from './atOnce';
import { installCodeStep } from './install';
import type { PlanOptions, RunbookStep } from './types';

export function beforeWindowSteps(inv: Inventory, opts: PlanOptions = {}): RunbookStep[] {
  const ctl = inv.controller;
  const phase = 'before-window';
  return [
    // The first change: clients reach nova through the VIP before any server is drained.
    {
      ...endpointStep(inv, 'change-compute-endpoint', phase),
      patch: ENDPOINT_IS_A_CHANGE,
      replaces: 'point-endpoint-at-vip',
    },
    // nova-manage must be the new release's to write the new schema.
    installCodeStep(inv, phase, ctl),
    // The API database first: cell databases are found through it.
    {
      id: 'api-db-sync',
      phase,
      title: 'nova-manage api_db sync',
      node: ctl,
      commands: [{ node: ctl, command: cmd(inv, 'apiDbSync') }],
      run: (rt, key) => rt.ops.nova.syncApiDb(key),
    },
    // Then every cell, cell0 included: a cell left behind fails the upgrade check.
    ...(opts.syncsAndPinsAtOnce ? [cellDbSyncsStep(inv)] : cellDbSyncSteps(inv)),
  ];
}

/**
 * Every cell's db sync at once: each cell is its own database, so one sync need not wait for
 * another (the default lab's two took 0.9 + 0.6 s one after the other on a busy 2-core machine,
 * bench/steps.ts, 30 Nov; 0.13 and 0.10 s at once on a quiet one, 7 Dec). Each
 * cell's run keeps its own key, so an activity retry reattaches; a cell that failed is named,
 * and an operator's retry syncs only the cells not yet synced.
 */
function cellDbSyncsStep(inv: Inventory): RunbookStep {
  const ctl = inv.controller;
  const done = new Set<string>();
  return {
    id: 'db-sync-cells',
    phase: 'before-window',
    title: `nova-manage db sync in every cell at once (${inv.cells.map((c) => c.name).join(', ')})`,
    node: ctl,
    commands: inv.cells.map((cell) => ({
      node: ctl,
      command: cmd(inv, 'dbSync', { config: cell.configFile, cell: cell.name }),
    })),
    run: (rt, key) =>
      runPartsAtOnce({
        parts: inv.cells,
        name: (cell) => cell.name,
        run: (cell) => rt.ops.nova.syncCellDb(cell, `${key}/${cell.name}`),
        done,
        limit: CELL_COMMANDS_AT_ONCE,
        failed: 'nova-manage db sync failed in',
        succeeded: 'synced',
        allDone: 'every cell was synced already',
      }),
  };
}

/** One step per cell, one after another: what runs started before `syncs-and-pins-at-once` replay. */
function cellDbSyncSteps(inv: Inventory): RunbookStep[] {
  const ctl = inv.controller;
  return inv.cells.map((cell): RunbookStep => ({
    id: `db-sync:${cell.name}`,
    phase: 'before-window',
    title: `nova-manage db sync for ${cell.name}`,
    node: ctl,
    commands: [{ node: ctl, command: cmd(inv, 'dbSync', { config: cell.configFile, cell: cell.name }) }],
    run: (rt, key) => rt.ops.nova.syncCellDb(cell, key),
  }));
}
