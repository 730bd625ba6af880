// What every activity shares: the activity context when there is one (the same code also runs
// outside Temporal: the lab demo, tests calling activities directly, where there is nothing to
// heartbeat), heartbeats, a cancellation-aware pause, and failures a retry cannot fix.
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

export function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Inside an activity, ends early with a CancelledFailure when the workflow cancels it. */
export async function pause(ms: number): Promise<void> {
  const ctx = activityContext();
  if (ctx) await ctx.sleep(ms);
  else await new Promise((r) => setTimeout(r, ms));
}

export function heartbeat(details: unknown): void {
  activityContext()?.heartbeat(details);
}

export function cancellationSignal(): AbortSignal | undefined {
  return activityContext()?.cancellationSignal;
}

/** A failure the retry policy must not repeat: bad input, a refusal, a state only an operator can change. */
export function nonRetryable(type: string, message: string, details?: Record<string, unknown>): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true, details: details ? [details] : undefined });
}

/** A plain timer that an AbortSignal ends early, for code that also runs outside an activity. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
