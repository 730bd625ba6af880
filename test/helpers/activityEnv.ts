// MockActivityEnvironment without the SDK's warning per failed activity: tests expect failures.
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';

export function activityEnv(info?: Partial<Info>): MockActivityEnvironment & { beats: unknown[] } {
  const env = new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') }) as MockActivityEnvironment & { beats: unknown[] };
  env.beats = [];
  env.on('heartbeat', (d: unknown) => env.beats.push(d));
  return env;
}

/** Runs a promise that must fail and returns what it failed with. */
export async function failureOf(p: Promise<unknown>): Promise<Error & { type?: string; nonRetryable?: boolean; details?: unknown[] }> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the activity to fail, and it succeeded');
}
