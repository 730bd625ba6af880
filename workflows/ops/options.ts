// The options policy every runbook activity is called with. Deterministic: no I/O here.
import type { ActivityOptions } from '@temporalio/workflow';
import type { Inventory } from '../../inventory/schema';

/**
 * `short` activities read or change one thing and never heartbeat: a dead worker is noticed
 * when their start-to-close runs out. `long` ones (detached runs, waits, tempest) heartbeat
 * every poll, so a dead worker or a hung SSH link shows up within the heartbeat timeout.
 */
export type Kind = 'short' | 'long';

/** `summary` is what the Web UI shows for the activity: it reads like the runbook's line. */
export function activityOptions(inv: Inventory, kind: Kind, summary: string): ActivityOptions {
  const t = inv.timeouts;
  const retry = {
    maximumAttempts: inv.retry.maximumAttempts,
    initialInterval: inv.retry.initialIntervalSeconds * 1000,
    maximumInterval: inv.retry.maximumIntervalSeconds * 1000,
    backoffCoefficient: 2,
  };
  if (kind === 'short') return { startToCloseTimeout: t.readSeconds * 1000, retry, summary };
  const seconds = Math.max(t.commandSeconds, t.tempestSeconds, t.drainSeconds, t.serviceUpSeconds) + 120;
  return { startToCloseTimeout: seconds * 1000, heartbeatTimeout: t.heartbeatSeconds * 1000, retry, summary };
}

/** Every call passes its own options (executeWithOptions); these only create the proxy. */
export function proxyDefaults(inv: Inventory): ActivityOptions {
  return { startToCloseTimeout: inv.timeouts.readSeconds * 1000 };
}
