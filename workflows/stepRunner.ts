// Running one runbook step: state transitions, and the hold that replaces failing the workflow
// when an activity has exhausted its retries. The one way a step runs and holds.
import { isCancellation } from '@temporalio/workflow';
import type { DecisionAction, Outcome } from '../common/messages';
import { AbortRequested, describeFailure, runKey } from './failures';
import type { Gates } from './gates';
import type { UpgradeState } from './state';

export interface StepContext {
  state: UpgradeState;
  gates: Gates;
}

export interface StepOptions {
  choices?: DecisionAction[];
  /** Runs an extra operator choice (e.g. shutdown-sessions) before the step is tried again. */
  onAction?: (action: DecisionAction) => Promise<void>;
}

export async function runStep(ctx: StepContext, id: string, fn: (key: string) => Promise<Outcome>, opts: StepOptions = {}): Promise<'done' | 'skipped'> {
  const { state, gates } = ctx;
  const step = state.step(id);
  if (step.status === 'succeeded' || step.status === 'skipped') return step.status === 'succeeded' ? 'done' : 'skipped';
  for (;;) {
    step.status = 'running';
    step.startedAt = state.now();
    step.attempts += 1;
    delete step.error;
    state.progress.currentStep = id;
    state.publish();
    try {
      const out = await fn(runKey(id, step.operatorRetries));
      step.status = 'succeeded';
      step.endedAt = state.now();
      step.summary = out.summary;
      if (out.alreadyDone) step.alreadyDone = true;
      if (out.outputTail) step.outputTail = out.outputTail.slice(-2000);
      state.publish();
      return 'done';
    } catch (err) {
      if (isCancellation(err) || err instanceof AbortRequested) throw err;
      step.status = 'held';
      const why = describeFailure(err);
      // A timeout says only "activity Heartbeat timeout": the hold must still name the node.
      step.error = step.node && !why.includes(step.node) ? `${step.title}${step.title.includes(step.node) ? '' : ` on ${step.node}`}: ${why}` : why;
      step.endedAt = state.now();
      const decision = await gates.holdForDecision(id, step.error, opts.choices ?? ['retry', 'skip', 'abort']);
      if (decision.action === 'retry') {
        step.operatorRetries += 1;
        continue;
      }
      if (decision.action === 'skip') {
        step.status = 'skipped';
        step.skipReason = `${decision.reason ?? ''} (by ${decision.by})`;
        state.publish();
        return 'skipped';
      }
      if (decision.action === 'abort') {
        step.status = 'failed';
        throw new AbortRequested(decision.by, decision.reason);
      }
      await opts.onAction?.(decision.action);
      step.operatorRetries += 1;
    }
  }
}
