import type { WorkflowHandle } from '@temporalio/client';
import { progressQuery, type Progress } from '../../common/messages';

/** Polls the progress query until `pred` holds; the error says where the upgrade stood. */
export async function untilProgress(
  handle: WorkflowHandle,
  pred: (p: Progress) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<Progress> {
  const deadline = Date.now() + timeoutMs;
  let last: Progress | undefined;
  while (Date.now() < deadline) {
    last = await handle.query(progressQuery);
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`timed out waiting for ${what}; last status ${last?.status}, step ${last?.currentStep}`);
}
