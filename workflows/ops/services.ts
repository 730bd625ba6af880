// nova's services on their nodes (systemd units by default), as the runbook calls them.
import { proxyActivities } from '@temporalio/workflow';
import type { createServiceActivities } from '../../activities/nova/services';
import { cmd, targetOf } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { activityOptions, proxyDefaults } from './options';

export function serviceOps(inv: Inventory) {
  const acts = proxyActivities<ReturnType<typeof createServiceActivities>>(proxyDefaults(inv));
  const stateDir = inv.remoteStateDir;
  const unitInput = (node: string, unit: string) => ({
    target: targetOf(inv, node),
    unit,
    stateCommand: cmd(inv, 'serviceState', { unit, node }),
    timeoutMs: inv.timeouts.serviceUpSeconds * 1000,
    pollMs: inv.timeouts.pollSeconds * 1000,
  });
  return {
    readServiceState: (node: string, unit: string) =>
      acts.readServiceState.executeWithOptions(activityOptions(inv, 'short', `read ${unit} state on ${node}`), [
        { target: targetOf(inv, node), command: cmd(inv, 'serviceState', { unit, node }) },
      ]),
    restartService: (node: string, unit: string, before: { mainPid: number; startedMonotonic: number }, key: string) =>
      acts.restartService.executeWithOptions(activityOptions(inv, 'long', `restart ${unit} on ${node}`), [
        { ...unitInput(node, unit), restartCommand: cmd(inv, 'serviceRestart', { unit, node }), before, key, stateDir },
      ]),
    /** Reads, restarts and reads again in one run on the node; the before is kept there. */
    restartServiceChecked: (node: string, unit: string, key: string) =>
      acts.restartServiceChecked.executeWithOptions(activityOptions(inv, 'long', `restart ${unit} on ${node}`), [
        {
          ...unitInput(node, unit),
          restartCommand: cmd(inv, 'serviceRestart', { unit, node }),
          key,
          stateDir,
        },
      ]),
    stopService: (node: string, unit: string, key: string) =>
      acts.stopService.executeWithOptions(activityOptions(inv, 'long', `gracefully stop ${unit} on ${node}`), [
        { ...unitInput(node, unit), stopCommand: cmd(inv, 'serviceStop', { unit, node }), key, stateDir },
      ]),
    /** `why` finishes the summary: "on the new code", "again after the abort". */
    startService: (node: string, unit: string, key: string, why: string) =>
      acts.startService.executeWithOptions(activityOptions(inv, 'long', `start ${unit} on ${node} ${why}`), [
        { ...unitInput(node, unit), startCommand: cmd(inv, 'serviceStart', { unit, node }), key, stateDir },
      ]),
    /** All of one node's units in one exchange. */
    hupServices: (node: string, units: string[]) =>
      acts.hupServices.executeWithOptions(activityOptions(inv, 'short', `SIGHUP ${units.join(', ')} on ${node}`), [
        {
          target: targetOf(inv, node),
          hups: units.map((unit) => ({ unit, command: cmd(inv, 'serviceHup', { unit, node }) })),
        },
      ]),
    hupService: (node: string, unit: string) =>
      acts.hupService.executeWithOptions(activityOptions(inv, 'short', `SIGHUP ${unit} on ${node}`), [
        { target: targetOf(inv, node), unit, command: cmd(inv, 'serviceHup', { unit, node }) },
      ]),
  };
}

export type ServiceOps = ReturnType<typeof serviceOps>;
