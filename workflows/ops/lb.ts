// The LB nodes that `lb setup` configured, as the upgrade calls them.
import { proxyActivities } from '@temporalio/workflow';
import type { createLbSetupActivities } from '../../activities/lb/activities';
import { lbNodeJobs } from '../../common/lbJobs';
import type { Inventory } from '../../inventory/schema';
import { activityOptions, proxyDefaults } from './options';

export function lbOps(inv: Inventory) {
  const acts = proxyActivities<ReturnType<typeof createLbSetupActivities>>(proxyDefaults(inv));
  return {
    /**
     * Where `lb setup` configured a server-state file, it is dumped again after every enable: a
     * reload would otherwise load an older dump and drain the server again.
     */
    saveServerState: async (): Promise<void> => {
      if (!inv.loadBalancer) return;
      for (const job of lbNodeJobs(inv)) {
        await acts.saveServerState.executeWithOptions(
          activityOptions(inv, 'short', `save HAProxy's server state on ${job.node}`),
          [{ node: job.node, target: job.target, lb: job.lb, sudo: job.sudo, serverStateFile: job.serverStateFile }],
        );
      }
    },
  };
}

export type LbOps = ReturnType<typeof lbOps>;
