// The maintenance window's end: a compute batch or an API server's drain that cannot finish
// before it is not started. Workflow time only, so a replay decides the same way.
import { patched } from '@temporalio/workflow';
import type { Inventory } from '../inventory/schema';
import { AbortRequested } from './failures';
import type { UpgradeState } from './state';
import type { StepContext } from './stepRunner';

export interface Estimate {
  ms: number;
  /** Where the number comes from, said to the operator with it. */
  basis: string;
}

export function formatDuration(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return s % 60 ? `${m} min ${s % 60} s` : `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  return h % 24 ? `${Math.floor(h / 24)} d ${h % 24} h` : `${Math.floor(h / 24)} d`;
}

/** Measurements include one slow run's luck; a quarter more leaves room for the next. */
const MEASURED_MARGIN = 1.25;

function fromMeasured(what: string, durations: number[]): Estimate | undefined {
  if (!durations.length) return undefined;
  const longest = Math.max(...durations);
  return {
    ms: Math.ceil(longest * MEASURED_MARGIN),
    basis: `measured: the longest of ${durations.length} ${what} so far took ${formatDuration(longest)}, plus 25%`,
  };
}

function took(startedAt?: string, endedAt?: string): number | undefined {
  return startedAt && endedAt ? Date.parse(endedAt) - Date.parse(startedAt) : undefined;
}

/** Durations of finished compute batches that did real work ("already done" ones prove nothing). */
function batchDurations(state: UpgradeState): number[] {
  return state.progress.steps
    .filter((s) => s.id.startsWith('compute-batch:') && s.status === 'succeeded' && !s.alreadyDone)
    .map((s) => took(s.startedAt, s.endedAt))
    .filter((d): d is number => d !== undefined);
}

/** One API server's cycle runs from its drain (or its session wait after a switch-over) to UP again. */
function drainDurations(state: UpgradeState, servers: string[]): number[] {
  const out: number[] = [];
  for (const server of servers) {
    const up = state.progress.steps.find((s) => s.id === `wait-up:${server}`);
    const first = ['drain', 'wait-sessions']
      .map((k) => state.progress.steps.find((s) => s.id === `${k}:${server}`))
      .find((s) => s?.startedAt);
    const d = up?.status === 'succeeded' ? took(first?.startedAt, up.endedAt) : undefined;
    if (d !== undefined) out.push(d);
  }
  return out;
}

export function batchEstimate(inv: Inventory, state: UpgradeState, nodes: number): Estimate {
  const t = inv.timeouts;
  const measured = fromMeasured('batches', batchDurations(state));
  if (measured) return measured;
  // Per node: install, graceful stop, start; then the waits for no tasks and for fresh
  // heartbeats; reads to pin, disable and enable.
  const seconds =
    nodes * (t.commandSeconds + 2 * t.serviceUpSeconds) + 2 * t.serviceUpSeconds + (nodes + 2) * t.readSeconds;
  return {
    ms: seconds * 1000,
    basis: `estimated from the inventory's timeouts for ${nodes} node${nodes === 1 ? '' : 's'}: commandSeconds ${t.commandSeconds}, serviceUpSeconds ${t.serviceUpSeconds}, readSeconds ${t.readSeconds}`,
  };
}

export function drainEstimate(inv: Inventory, state: UpgradeState, servers: string[]): Estimate {
  const t = inv.timeouts;
  const measured = fromMeasured('API server cycles', drainDurations(state, servers));
  if (measured) return measured;
  // Drain, wait for no sessions, install, restart, check the version, enable, wait until UP.
  const seconds = t.drainSeconds + t.commandSeconds + 3 * t.serviceUpSeconds + 4 * t.readSeconds;
  return {
    ms: seconds * 1000,
    basis: `estimated from the inventory's timeouts: drainSeconds ${t.drainSeconds}, commandSeconds ${t.commandSeconds}, serviceUpSeconds ${t.serviceUpSeconds}, readSeconds ${t.readSeconds}`,
  };
}

/**
 * Holds before `stepId` while what it starts (`what`, e.g. "batch 3/5") would outlast the
 * window. Retry looks again (a shorter measured estimate may now fit); abort unwinds. Skip is
 * not offered: skipping a batch or a drain would leave the cloud half-upgraded.
 */
export async function holdUnlessWindowAllows(
  ctx: StepContext,
  windowEnd: string | undefined,
  stepId: string,
  what: string,
  estimate: () => Estimate,
): Promise<void> {
  const { state, gates } = ctx;
  const step = state.step(stepId);
  if (!windowEnd || step.status === 'succeeded' || step.status === 'skipped') return;
  const end = Date.parse(windowEnd);
  for (;;) {
    gates.checkAbort();
    const now = Date.now();
    const need = estimate();
    if (now + need.ms <= end) return;
    // Runs started before the window check existed replay without this hold.
    if (!patched('maintenance-window-end')) return;
    const left = end - now;
    const message = `the window ends at ${new Date(end).toISOString()} (${left > 0 ? `in ${formatDuration(left)}` : `${formatDuration(left)} ago`}); ${what} needs up to ${formatDuration(need.ms)} (${need.basis}), so it was not started`;
    step.status = 'held';
    step.error = message;
    state.progress.currentStep = stepId;
    const decision = await gates.holdForDecision(stepId, message, ['retry', 'abort']);
    step.status = 'pending';
    delete step.error;
    if (decision.action === 'abort') throw new AbortRequested(decision.by, decision.reason);
  }
}
