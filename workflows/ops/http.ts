// nova-api over HTTP: a node's own version document, and the VIP probe that runs beside the
// window's steps and reports what API clients saw.
import {
  ActivityCancellationType,
  CancellationScope,
  patched,
  proxyActivities,
  proxySinks,
  sleep,
} from '@temporalio/workflow';
import type { ProbeStopSinks } from '../../common/messages';
import type { createVersionActivities } from '../../activities/http/versions';
import type { createProbeActivities } from '../../activities/http/probe';
import { nodeByName } from '../../common/topology';
import type { Inventory } from '../../inventory/schema';
import { activityOptions, proxyDefaults } from './options';

type HttpActivities = ReturnType<typeof createVersionActivities> & ReturnType<typeof createProbeActivities>;
export type ProbeSnapshot = Awaited<ReturnType<HttpActivities['runVipProbe']>>;

/**
 * One probe activity's longest run. Before `probe-segments` a forgotten probe stopped by itself
 * here; since, a window longer than this (1,000 computes at 30–60 s each take 8–17 h) runs in
 * segments, each carrying the aggregates of those before, until the workflow asks it to stop.
 */
const PROBE_MAX_MS = 12 * 3600 * 1000;

export interface RunningProbe {
  /** Asks the probe to stop and waits for its aggregates; an Error if it was lost. */
  stop: () => Promise<ProbeSnapshot | Error>;
}

export function httpOps(inv: Inventory) {
  const acts = proxyActivities<HttpActivities>(proxyDefaults(inv));
  return {
    checkApiServesVersion: (node: string) => {
      const n = nodeByName(inv, node);
      return acts.checkApiServesVersion.executeWithOptions(
        activityOptions(inv, 'long', `check nova-api on ${node} at ${n.api?.url}`),
        [
          {
            node,
            url: n.api?.url ?? `http://${n.address}:8774`,
            timeoutMs: inv.timeouts.serviceUpSeconds * 1000,
            pollMs: inv.timeouts.pollSeconds * 1000,
          },
        ],
      );
    },

    /**
     * The VIP probe runs beside the window's steps. `requestStop` raises the flag the probe asks
     * for; it then ends with its aggregates, even on an attempt that starts after a worker died.
     * Cancelling is the fallback for a probe that never asks.
     */
    startVipProbe: (requestStop: () => void): RunningProbe => {
      const p = inv.probe;
      const scope = new CancellationScope();
      let stopAsked = false;
      const segment = (carry?: ProbeSnapshot) =>
        acts.runVipProbe.executeWithOptions(
          {
            summary: `probe ${inv.vip.url} at ${p.ratePerSecond}/s from ${p.clients} clients`,
            startToCloseTimeout: PROBE_MAX_MS,
            scheduleToCloseTimeout: PROBE_MAX_MS,
            heartbeatTimeout: inv.timeouts.heartbeatSeconds * 1000,
            cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            // A worker death restarts it, carrying on from its last heartbeat, for the whole window.
            retry: { initialInterval: 1000, maximumInterval: 10_000 },
          },
          [
            {
              url: inv.vip.url,
              paths: p.paths,
              ratePerSecond: p.ratePerSecond,
              clients: p.clients,
              requestTimeoutMs: p.requestTimeoutSeconds * 1000,
              maxDurationMs: PROBE_MAX_MS,
              ...(carry ? { carry } : {}),
              ...(p.auth ? { auth: p.auth } : {}),
            },
          ],
        );
      const run = scope
        .run(async () => {
          if (!patched('probe-segments')) return segment();
          let total = await segment();
          while (total.stoppedBecause === 'maxDuration' && !stopAsked) total = await segment(total);
          return total;
        })
        // Held, not thrown: a probe lost mid-window must not fail the workflow task.
        .catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))));
      return {
        stop: async () => {
          stopAsked = true;
          requestStop();
          // The probe in this worker stops as this task completes, instead of at its next
          // question (every 2 s). A sink issues no command: replay is unchanged.
          proxySinks<ProbeStopSinks>().probeStop.requested();
          const grace = (inv.timeouts.heartbeatSeconds * 3 + 30) * 1000;
          const timedOut = await Promise.race([run.then(() => false), sleep(grace).then(() => true)]);
          if (timedOut) scope.cancel();
          return run;
        },
      };
    },
  };
}

export type HttpOps = ReturnType<typeof httpOps>;
