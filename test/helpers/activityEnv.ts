// MockActivityEnvironment with typed results and without the SDK's warning per failed activity
// (tests expect failures); heartbeats are collected in `beats`.
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';

export interface ActivityEnv {
  run<A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A): Promise<R>;
  cancel(): void;
  beats: unknown[];
  mock: MockActivityEnvironment;
}

export function activityEnv(info?: Partial<Info>): ActivityEnv {
  const mock = new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });
  const beats: unknown[] = [];
  mock.on('heartbeat', (d: unknown) => beats.push(d));
  return {
    run: <A extends unknown[], R>(fn: (...args: A) => Promise<R>, ...args: A) => mock.run(fn, ...args) as Promise<R>,
    cancel: () => mock.cancel(),
    beats,
    mock,
  };
}

/** Runs a promise that must fail and returns what it failed with. */
export async function failureOf(
  p: Promise<unknown>,
): Promise<Error & { type?: string; nonRetryable?: boolean; details?: unknown[] }> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected the activity to fail, and it succeeded');
}
