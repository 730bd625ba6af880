// After the window: every service learns that the last compute is upgraded (SIGHUP re-reads
// [upgrade_levels] compute=auto and lifts the RPC pin), then the data migrations that the new
// release may need before the next one.
import { cmd, hupServices } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import type { RunbookStep } from './types';

export function afterWindowSteps(inv: Inventory): RunbookStep[] {
  const ctl = inv.controller;
  const phase = 'after-window';
  return [
    ...hupServices(inv).map(({ node, unit }): RunbookStep => ({
      id: `hup:${node}:${unit}`,
      phase,
      title: `SIGHUP ${unit} on ${node}`,
      node,
      commands: [{ node, command: cmd(inv, 'serviceHup', { unit, node }) }],
      run: (rt) => rt.ops.services.hupService(node, unit),
    })),
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
