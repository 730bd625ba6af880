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

/**
 * Poll delays that start fast and back off to the configured interval: most waits end within
 * the first few hundred milliseconds (a check interval, a restart), and a long one should not
 * cost a read every 50 ms. 50, 75, 113, 169, … ms, never more than `maxMs`.
 */
export function backoff(maxMs: number, firstMs = 50): () => number {
  let next = Math.min(firstMs, maxMs);
  return () => {
    const now = next;
    next = Math.min(maxMs, Math.ceil(next * 1.5));
    return now;
  };
}

/**
 * `fn` over `items`, at most `limit` at once, results in the items' order. The first failure is
 * thrown once every started call has settled, so no call is left running behind the error.
 */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (next < items.length && !failure) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  if (failure) throw failure.error;
  return out;
}
