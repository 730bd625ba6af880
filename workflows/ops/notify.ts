// The webhook, called beside the upgrade and never in its way.
import { proxyActivities } from '@temporalio/workflow';
import type { createNotifyActivities } from '../../activities/notify/webhook';
import type { NotifyEvent } from '../../common/messages';

export function notifyOps() {
  const acts = proxyActivities<ReturnType<typeof createNotifyActivities>>({ startToCloseTimeout: 60_000 });
  return {
    /**
     * The activity retries delivery itself and never throws for an unreachable receiver; the
     * schedule-to-close limit also bounds the wait for a worker, so a lost notification costs
     * at most two minutes and never a hold.
     */
    notifyWebhook: (url: string, event: NotifyEvent) =>
      acts.notifyWebhook.executeWithOptions(
        {
          summary: `notify the webhook: ${event.event}${event.step ? ` at ${event.step}` : event.phase ? ` for ${event.phase}` : ''}`,
          startToCloseTimeout: 60_000,
          scheduleToCloseTimeout: 120_000,
          retry: { maximumAttempts: 2, initialInterval: 1_000 },
        },
        [{ url, event, attempts: 3, requestTimeoutMs: 5_000, backoffMs: 1_000 }],
      ),
  };
}

export type NotifyOps = ReturnType<typeof notifyOps>;
