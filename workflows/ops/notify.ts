// The webhook, called beside the upgrade and never in its way.
import { proxyActivities } from '@temporalio/workflow';
import type { createNotifyActivities } from '../../activities/notify/webhook';
import type { NotifyEvent, WebhookRef } from '../../common/messages';

/** Where the worker finds the URL; `url` only in runs started on 0.1.0. */
export type WebhookTarget = WebhookRef & { url?: string };

export function notifyOps() {
  const acts = proxyActivities<ReturnType<typeof createNotifyActivities>>({ startToCloseTimeout: 60_000 });
  return {
    /**
     * The activity retries delivery itself and never throws for an unreachable receiver; the
     * schedule-to-close limit also bounds the wait for a worker, so a lost notification costs
     * at most two minutes and never a hold.
     */
    notifyWebhook: (target: WebhookTarget, event: NotifyEvent) =>
      acts.notifyWebhook.executeWithOptions(
        {
          summary: `notify the webhook: ${event.event}${event.step ? ` at ${event.step}` : event.phase ? ` for ${event.phase}` : ''}`,
          startToCloseTimeout: 60_000,
          scheduleToCloseTimeout: 120_000,
          retry: { maximumAttempts: 2, initialInterval: 1_000 },
        },
        [{ ...target, event, attempts: 3, requestTimeoutMs: 5_000, backoffMs: 1_000 }],
      ),
  };
}

export type NotifyOps = ReturnType<typeof notifyOps>;
