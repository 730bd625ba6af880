// The HAProxy runtime activities as the runbook calls them, on every LB of the inventory.
import { proxyActivities } from '@temporalio/workflow';
import type { createHaproxyActivities } from '../../activities/haproxy/activities';
import type { RecordedWeights } from '../../common/haproxy';
import { lbTargets } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { activityOptions, proxyDefaults } from './options';

export function haproxyOps(inv: Inventory) {
  const acts = proxyActivities<ReturnType<typeof createHaproxyActivities>>(proxyDefaults(inv));
  const lbs = () => lbTargets(inv);
  const lbNames = () =>
    lbs()
      .map((l) => l.node)
      .join(', ');
  // A service behind backends of its own (nova-metadata) names them; nova-api's is the default.
  const defaultBackend = inv.haproxy.backend;
  const t = inv.timeouts;
  return {
    checkLoadBalancers: (servers: string[], backend = defaultBackend) =>
      acts.checkLoadBalancers.executeWithOptions(activityOptions(inv, 'short', `check HAProxy on ${lbNames()}`), [
        { lbs: lbs(), backend, servers },
      ]),
    recordServerWeights: (servers: string[], backend = defaultBackend) =>
      acts.recordServerWeights.executeWithOptions(
        activityOptions(inv, 'short', `record the weight of ${servers.join(', ')} on every LB`),
        [{ lbs: lbs(), backend, servers }],
      ),
    drainApiServer: (server: string, backend = defaultBackend) =>
      acts.drainApiServer.executeWithOptions(activityOptions(inv, 'short', `drain ${server} on ${lbNames()}`), [
        { lbs: lbs(), backend, server, mode: inv.haproxy.drainMode },
      ]),
    waitForNoSessions: (server: string, backend = defaultBackend, since?: Record<string, number>) =>
      acts.waitForNoSessions.executeWithOptions(
        activityOptions(inv, 'long', `wait until ${server} has no sessions on every LB`),
        [
          {
            lbs: lbs(),
            backend,
            server,
            settleMs: t.settleSeconds * 1000,
            timeoutMs: t.drainSeconds * 1000,
            pollMs: t.pollSeconds * 1000,
            // Only when recorded, so a run whose drain predates the record sends what it did.
            ...(since ? { since } : {}),
          },
        ],
      ),
    shutdownSessions: (server: string, backend = defaultBackend) =>
      acts.shutdownSessions.executeWithOptions(
        activityOptions(inv, 'short', `shut down the remaining sessions of ${server}`),
        [{ lbs: lbs(), backend, server }],
      ),
    enableApiServer: (server: string, weights: RecordedWeights = {}, backend = defaultBackend) =>
      acts.enableApiServer.executeWithOptions(activityOptions(inv, 'short', `enable ${server} on every LB`), [
        { lbs: lbs(), backend, server, weights },
      ]),
    switchOverApiServers: (enable: string, drain: string[], weights: RecordedWeights, backend = defaultBackend) =>
      acts.switchOverApiServers.executeWithOptions(
        activityOptions(inv, 'short', `enable ${enable} and drain ${drain.join(', ')} in one exchange`),
        [{ lbs: lbs(), backend, enable, drain, mode: inv.haproxy.drainMode, weights }],
      ),
    waitForServerUp: (server: string, backend = defaultBackend) =>
      acts.waitForServerUp.executeWithOptions(
        activityOptions(inv, 'long', `wait until every LB reports ${server} UP`),
        [{ lbs: lbs(), backend, server, timeoutMs: t.serviceUpSeconds * 1000, pollMs: t.pollSeconds * 1000 }],
      ),
    readBackendCounters: (backend = defaultBackend) =>
      acts.readBackendCounters.executeWithOptions(
        activityOptions(inv, 'short', `read HAProxy's retry and redispatch counters for ${backend}`),
        [{ lbs: lbs(), backend }],
      ),
  };
}

export type HaproxyOps = ReturnType<typeof haproxyOps>;
