// Before the window: the new code on the controller and the schema migrations, which nova
// keeps additive so the old services run on the new schema (nova's upgrade guide).
import { cmd } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { ENDPOINT_IS_A_CHANGE, endpointStep } from './beforeUpgrade';
import { installCodeStep } from './install';
import type { RunbookStep } from './types';

export function beforeWindowSteps(inv: Inventory): RunbookStep[] {
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
    ...inv.cells.map((cell): RunbookStep => ({
      id: `db-sync:${cell.name}`,
      phase,
      title: `nova-manage db sync for ${cell.name}`,
      node: ctl,
      commands: [{ node: ctl, command: cmd(inv, 'dbSync', { config: cell.configFile, cell: cell.name }) }],
      run: (rt, key) => rt.ops.nova.syncCellDb(cell, key),
    })),
  ];
}
