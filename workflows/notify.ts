// Webhook notifications on gates, holds and the finish. They run beside the upgrade, never in
// its way: a gate does not wait for its notification, and one that was not delivered becomes a
// warning in the progress, not a hold.
import { condition, patched } from '@temporalio/workflow';
import type { NotifyEventKind, NotifyFields } from '../common/messages';
import type { NotifyOps, WebhookTarget } from './ops/notify';
import type { UpgradeState } from './state';
import { describeFailure } from './failures';

export interface Notifier {
  send(kind: NotifyEventKind, fields: NotifyFields): void;
}

export class WebhookNotifier implements Notifier {
  private inFlight = 0;

  constructor(
    private readonly ops: NotifyOps,
    private readonly state: UpgradeState,
    private readonly target: WebhookTarget | undefined,
  ) {}

  send(kind: NotifyEventKind, fields: NotifyFields): void {
    // Runs started before notifications existed replay without these activities.
    if (!this.target || !patched('webhook-notifications')) return;
    const p = this.state.progress;
    this.inFlight += 1;
    this.ops
      .notifyWebhook(this.target, {
        event: kind,
        workflowId: p.workflowId,
        cloud: p.cloud,
        ...fields,
        at: this.state.now(),
      })
      .then(
        (r) => {
          if (!r.delivered) this.warn(r.summary);
        },
        (err: unknown) => this.warn(`${kind} notification failed: ${describeFailure(err)}`),
      )
      .finally(() => {
        this.inFlight -= 1;
      });
  }

  /** The last notification gets a bounded wait, so a finished run has said so before it closes. */
  async settle(): Promise<void> {
    if (this.inFlight) await condition(() => this.inFlight === 0, '150s');
  }

  private warn(message: string): void {
    this.state.progress.warnings.push(message);
  }
}
