// The leaf every workflow module may import: the abort that unwinds to the handler, the sentence
// an operator reads for a failure, and the key that lets a retried activity reattach to its
// remote run. Modelled on the SDK's packages/workflow/src/errors.ts: no imports of our own.
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, workflowInfo } from '@temporalio/workflow';

/** Thrown to unwind to the abort handler at a safe point. */
export class AbortRequested extends Error {
  constructor(
    readonly by: string,
    readonly reason?: string,
  ) {
    super(`abort requested by ${by}${reason ? `: ${reason}` : ''}`);
    this.name = 'AbortRequested';
  }
}

/** The innermost meaningful message: ActivityFailure says only "activity failed". */
export function describeFailure(err: unknown): string {
  let cur: unknown = err;
  while (cur instanceof ActivityFailure || cur instanceof ChildWorkflowFailure) cur = cur.cause;
  if (cur instanceof ApplicationFailure && cur.type) return `${cur.message} [${cur.type}]`;
  return cur instanceof Error ? cur.message : String(cur);
}

/**
 * A key unique to this upgrade, step and operator retry. Activity retries reuse it, so a
 * detached command on the node is reattached rather than started twice.
 */
export function runKey(stepId: string, operatorRetries: number): string {
  return `${workflowInfo().workflowId}/${workflowInfo().firstExecutionRunId.slice(0, 8)}/${stepId}/r${operatorRetries}`;
}
