// Running one runbook step: state transitions, and the hold that replaces failing the workflow
// when an activity has exhausted its retries. The one way a step runs and holds.
import { isCancellation } from '@temporalio/workflow';
import type { DecideInput, DecisionAction, Outcome, StepStatus } from '../common/messages';
import { AbortRequested, describeFailure, runKey } from './failures';
import type { Gates } from './gates';
import type { UpgradeState } from './state';

/** The fields of a step that the runner keeps; the upgrade's and the LB setup's steps have them. */
export interface StepRecord {
  title: string;
  node?: string;
  status: StepStatus;
  attempts: number;
  operatorRetries?: number;
  startedAt?: string;
  endedAt?: string;
  summary?: string;
  alreadyDone?: boolean;
  outputTail?: string;
  error?: string;
  skipReason?: string;
}

/** What a workflow gives the runner: its steps, its clock, its progress and its holds. */
export interface StepHost {
  step(id: string): StepRecord;
  now(): string;
  /** Marks `id` as the step running now and publishes the progress. */
  starting(id: string): void;
  publish(): void;
  /** Waits for the operator's retry, skip, abort or other choice at a held step. */
  hold(id: string, error: string, choices: DecisionAction[]): Promise<DecideInput>;
}

/** The upgrade's state and gates, as the runner's host; the window hold uses them too. */
export interface StepContext {
  state: UpgradeState;
  gates: Gates;
}

export function upgradeHost({ state, gates }: StepContext): StepHost {
  return {
    step: (id) => state.step(id),
    now: () => state.now(),
    starting: (id) => {
      state.progress.currentStep = id;
      state.publish();
    },
    publish: () => state.publish(),
    hold: (id, error, choices) => gates.holdForDecision(id, error, choices),
  };
}

export interface StepOptions {
  choices?: DecisionAction[];
  /** Runs an extra operator choice (e.g. shutdown-sessions) before the step is tried again. */
  onAction?: (action: DecisionAction) => Promise<void>;
}

/**
 * Runs a step until it succeeds, is skipped or the operator aborts. A failure (the activity's
 * retries exhausted) holds the step; retry runs it again with a new run key, so a detached
 * command is started anew only when the operator asks for it.
 */
export async function runStep(
  host: StepHost,
  id: string,
  fn: (key: string) => Promise<Outcome>,
  opts: StepOptions = {},
): Promise<'done' | 'skipped'> {
  const step = host.step(id);
  if (step.status === 'succeeded' || step.status === 'skipped') return step.status === 'succeeded' ? 'done' : 'skipped';
  for (;;) {
    step.status = 'running';
    step.startedAt = host.now();
    step.attempts += 1;
    delete step.error;
    host.starting(id);
    try {
      const out = await fn(runKey(id, step.operatorRetries ?? 0));
      step.status = 'succeeded';
      step.endedAt = host.now();
      step.summary = out.summary;
      if (out.alreadyDone) step.alreadyDone = true;
      if (out.outputTail) step.outputTail = out.outputTail.slice(-2000);
      host.publish();
      return 'done';
    } catch (err) {
      if (isCancellation(err)) {
        // Stopped where it stood, by an abort or a cancel of the workflow; the abort says so.
        step.status = 'failed';
        step.error = `stopped: ${describeFailure(err)}`;
        step.endedAt = host.now();
        throw err;
      }
      if (err instanceof AbortRequested) throw err;
      step.status = 'held';
      const why = describeFailure(err);
      // A timeout says only "activity Heartbeat timeout": the hold must still name the node.
      step.error =
        step.node && !why.includes(step.node)
          ? `${step.title}${step.title.includes(step.node) ? '' : ` on ${step.node}`}: ${why}`
          : why;
      step.endedAt = host.now();
      const decision = await host.hold(id, step.error, opts.choices ?? ['retry', 'skip', 'abort']);
      if (decision.action === 'skip') {
        step.status = 'skipped';
        step.skipReason = `${decision.reason ?? ''} (by ${decision.by})`;
        host.publish();
        return 'skipped';
      }
      if (decision.action === 'abort') {
        step.status = 'failed';
        throw new AbortRequested(decision.by, decision.reason);
      }
      if (decision.action !== 'retry') await opts.onAction?.(decision.action);
      step.operatorRetries = (step.operatorRetries ?? 0) + 1;
    }
  }
}
