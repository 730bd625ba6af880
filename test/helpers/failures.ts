import { ApplicationFailure } from '@temporalio/common';
import { expect } from 'vitest';

/** The ApplicationFailure a promise rejects with; a promise that resolves fails the test. */
export async function failureOf(work: Promise<unknown>): Promise<ApplicationFailure> {
  const outcome = await work.then(
    () => new Error('expected a failure, but it succeeded'),
    (e: unknown) => e,
  );
  expect(outcome).toBeInstanceOf(ApplicationFailure);
  return outcome as ApplicationFailure;
}
