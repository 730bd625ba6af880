// nova-compute records in the service list, as a compute batch calls them from the controller.
import { proxyActivities } from '@temporalio/workflow';
import type { createComputeActivities } from '../../activities/nova/computes';
import type { CommandName } from '../../inventory/commands';
import { cmd, targetOf } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { activityOptions, proxyDefaults } from './options';

/** An activity's summary names a batch's hosts, cut short at fleet size. */
export function hostList(hosts: string[], max = 8): string {
  return hosts.length <= max ? hosts.join(', ') : `${hosts.slice(0, max).join(', ')} and ${hosts.length - max} more`;
}

export function computeOps(inv: Inventory) {
  const acts = proxyActivities<ReturnType<typeof createComputeActivities>>(proxyDefaults(inv));
  const ctl = () => targetOf(inv, inv.controller);
  const perHost = (hosts: string[], name: CommandName, reason?: string): Record<string, string> =>
    Object.fromEntries(hosts.map((host) => [host, cmd(inv, name, { host, ...(reason ? { reason } : {}) })]));
  const waits = { timeoutMs: inv.timeouts.serviceUpSeconds * 1000, pollMs: inv.timeouts.pollSeconds * 1000 };
  return {
    disableComputeServices: (hosts: string[], reason: string) =>
      acts.disableComputeServices.executeWithOptions(
        activityOptions(inv, 'short', `disable ${hosts.join(', ')} for scheduling`),
        [
          {
            target: ctl(),
            listCommand: cmd(inv, 'serviceList'),
            hosts,
            disableCommands: perHost(hosts, 'computeServiceDisable', reason),
            reason,
          },
        ],
      ),
    enableComputeServices: (hosts: string[]) =>
      acts.enableComputeServices.executeWithOptions(
        activityOptions(inv, 'short', `enable ${hosts.join(', ')} for scheduling`),
        [
          {
            target: ctl(),
            listCommand: cmd(inv, 'serviceList'),
            hosts,
            enableCommands: perHost(hosts, 'computeServiceEnable'),
            // Every disable of this upgrade says so (runbook/batchSteps.ts); any other is the operator's.
            ourReason: `nova-upgrade to ${inv.release.to}`,
          },
        ],
      ),
    waitForNoTasksInProgress: (hosts: string[]) =>
      acts.waitForNoTasksInProgress.executeWithOptions(
        activityOptions(inv, 'long', `wait until no instance task runs on ${hosts.join(', ')}`),
        [{ target: ctl(), commandsPerHost: perHost(hosts, 'serverTasksOnHost'), ...waits }],
      ),
    /** Heartbeats newer than the restart: an old one stays "up" for service_down_time. */
    waitForComputesUp: (hosts: string[], restartedAfter: Record<string, string>, partial?: boolean) =>
      acts.waitForComputesUp.executeWithOptions(
        activityOptions(inv, 'long', `wait until ${hostList(hosts)} report up on the new code`),
        [
          {
            target: ctl(),
            listCommand: cmd(inv, 'serviceList'),
            hosts,
            restartedAfter,
            ...waits,
            ...(partial ? { partial } : {}),
          },
        ],
      ),
    findOrphanedServices: () =>
      acts.findOrphanedServices.executeWithOptions(
        activityOptions(inv, 'short', 'check the service list for orphaned records'),
        [{ target: ctl(), listCommand: cmd(inv, 'serviceList'), knownHosts: inv.nodes.map((n) => n.novaHost) }],
      ),
  };
}

export type ComputeOps = ReturnType<typeof computeOps>;
