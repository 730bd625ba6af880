// tempest on the inventory's tempest host, run detached so a retry reattaches to it.
import { proxyActivities } from '@temporalio/workflow';
import type { createTempestActivities } from '../../activities/tempest/run';
import { cmd, targetOf } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { activityOptions, proxyDefaults } from './options';

export function tempestOps(inv: Inventory) {
  const acts = proxyActivities<ReturnType<typeof createTempestActivities>>(proxyDefaults(inv));
  const host = inv.tempest.host;
  return {
    runTempest: (key: string) =>
      acts.runTempest.executeWithOptions(activityOptions(inv, 'long', `run tempest on ${host}`), [
        {
          target: targetOf(inv, host),
          command: cmd(inv, 'tempest'),
          key,
          stateDir: inv.remoteStateDir,
          timeoutMs: inv.timeouts.tempestSeconds * 1000,
        },
      ]),
  };
}

export type TempestOps = ReturnType<typeof tempestOps>;
