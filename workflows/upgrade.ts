// nova's zero-downtime upgrade, phase by phase, each behind an operator's approval. This file
// only interprets the runbook (runbook/index.ts): it runs each line through the step runner,
// holds at the maintenance window, keeps tempest beside the API restarts and the VIP probe
// beside the window, and undoes what an abort would leave half-done.
import { CancellationScope, isCancellation, patched, setHandler } from '@temporalio/workflow';
import {
  PHASES,
  probeStopQuery,
  type Outcome,
  type Phase,
  type UpgradeInput,
  type UpgradeResult,
} from '../common/messages';
import { expandInventory } from '../common/nodeRuns';
import { progressAnswer, succeededSteps } from '../common/progressAnswer';
import { computeBatches } from '../common/topology';
import { Exposure } from './exposure';
import { AbortRequested, runKey } from './failures';
import { Gates } from './gates';
import { WebhookNotifier } from './notify';
import { createOps } from './ops';
import { planUpgrade, type RunbookStep, type RunContext } from './runbook';
import { UpgradeState } from './state';
import { runStep, upgradeHost, type StepContext } from './stepRunner';
import { handleTemplateUpdates } from './templates';
import { holdUnlessWindowAllows } from './window';

export async function novaUpgrade(input: UpgradeInput): Promise<UpgradeResult> {
  // Pure expansion: the same commands whether the input came compact or in full.
  const inv = expandInventory(input.inventory);
  // Asked first, before any command, so that a run started on an earlier release keeps its plan:
  // one SIGHUP step per compute, one restart step per control service, SIGHUPs in sequence.
  const plan = planUpgrade(inv, {
    computeHupInBatches: patched('compute-hup-in-batches'),
    restartsAtOnce: patched('restarts-at-once'),
    hupsAtOnce: patched('hups-at-once'),
    syncsAndPinsAtOnce: patched('syncs-and-pins-at-once'),
  });
  const batches = computeBatches(inv);
  const state = new UpgradeState(
    input,
    plan,
    batches.reduce((n, b) => n + b.nodes.length, 0),
    batches.length,
  );
  const ops = createOps(inv);
  const n = inv.notify;
  // 0.1.0 inventories carried the URL itself; today's name where the worker reads it.
  const webhook = n.webhookUrl
    ? { url: n.webhookUrl }
    : n.webhookUrlFile
      ? { urlFile: n.webhookUrlFile }
      : n.webhookUrlEnv
        ? { urlEnv: n.webhookUrlEnv }
        : undefined;
  const notifier = new WebhookNotifier(ops.notify, state, webhook);
  const gates = new Gates(state, input.autoApprove, notifier);
  handleTemplateUpdates(state, inv);
  setHandler(probeStopQuery, () => state.progress.probeStopRequested === true);
  const ctx: StepContext = { state, gates };
  const rt: RunContext = {
    inv,
    ops,
    state,
    weights: {},
    hold: (id, error, choices) => gates.holdForDecision(id, error, choices),
  };
  const exposure = new Exposure();
  const done: string[] = [];
  // Runs started before these existed replay without them (contributing.md): a cancel from the
  // Web UI or `temporal workflow cancel` cleans up as an abort does, and an abort stops the
  // running step (a long tempest run, a compute batch) instead of waiting for it to end.
  const cancelCleansUp = patched('cancel-cleans-up');
  const abortStopsStep = patched('abort-stops-running-step');
  state.publish();

  try {
    for (const phase of PHASES) {
      state.enterPhase(phase);
      // Warnings (nova-status exit 1) are shown again at the gates that follow them.
      const warnings = phase === 'during-window' || phase === 'after-window' ? [...state.progress.warnings] : [];
      await gates.waitForApproval(phase, warnings);
      await runPhase(
        ctx,
        rt,
        exposure,
        phase,
        plan.filter((s) => s.phase === phase),
        abortStopsStep,
      );
      done.push(`phase ${phase} completed`);
    }
    state.progress.status = 'completed';
    delete state.progress.currentStep;
    state.publish();
    await finished(notifier, state, `nova ${inv.release.from} → ${inv.release.to} on ${inv.cloud} completed`);
    return result(state, 'completed', done);
  } catch (err) {
    if (cancelCleansUp && isCancellation(err)) {
      // The cancel has already reached every scope; this one it cannot interrupt.
      await CancellationScope.nonCancellable(async () => {
        state.progress.status = 'aborting';
        state.publish();
        done.push(...(await exposure.undo(ops)));
        state.progress.status = 'aborted';
        state.publish();
        await finished(
          notifier,
          state,
          `upgrade of ${inv.cloud} cancelled; put right: ${done.join('; ') || 'nothing was left half-done'}`,
        );
      });
      throw err;
    }
    if (!(err instanceof AbortRequested)) throw err;
    state.progress.status = 'aborting';
    state.publish();
    done.push(...(await exposure.undo(ops)));
    state.progress.status = 'aborted';
    state.publish();
    await finished(
      notifier,
      state,
      `upgrade of ${inv.cloud} aborted by ${err.by}${err.reason ? `: ${err.reason}` : ''}`,
    );
    // The result's payload only, not a command: runs started before replay as they were.
    return result(state, 'aborted', [...succeededSteps(state.progress.steps), ...done]);
  }
}

const RETIRED = 'replaced in this release by the step that follows it in the plan';

async function runPhase(
  ctx: StepContext,
  rt: RunContext,
  exposure: Exposure,
  phase: Phase,
  steps: RunbookStep[],
  abortStopsStep: boolean,
): Promise<void> {
  const { state, gates } = ctx;
  // The VIP probe measures what clients see for the whole window.
  if (phase === 'during-window' && rt.inv.probe.enabled) {
    rt.probe = rt.ops.http.startVipProbe(() => void (state.progress.probeStopRequested = true));
  }
  // Steps running beside the ones that follow, keyed by the step after which they are taken.
  const beside = new Map<string, { step: RunbookStep; first: Promise<unknown> }>();
  // A repeating step starts no new run once its `until` is done, or once this phase is left.
  const untilDone = new Set<string>();
  let leaving = false;
  try {
    for (const s of steps) {
      if (s.beside) {
        const t = state.step(s.id);
        t.status = 'running';
        t.startedAt = state.now();
        const until = s.beside.until;
        const repeat = s.beside.repeat === true && patched('beside-repeats-until');
        const first = (
          repeat ? repeatUntil(s, rt, () => leaving || untilDone.has(until)) : s.run(rt, runKey(s.id, 0))
        ).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
        beside.set(until, { step: s, first });
        continue;
      }
      if (s.retiredBy) {
        if (patched(s.retiredBy)) {
          // Replaced in this release; the run goes on to the step that replaces it.
          state.retire(s.id, RETIRED);
          continue;
        }
      }
      if (s.replaces) {
        const old = state.step(s.replaces);
        if (old.status === 'succeeded' || (old.status === 'skipped' && old.skipReason !== RETIRED)) {
          // A run started before the replacement already did (or skipped) this as the old step.
          const t = state.step(s.id);
          t.status = 'skipped';
          t.skipReason = `done as ${s.replaces}, the step this release replaced`;
          continue;
        }
      }
      if (s.patch && !patched(s.patch)) {
        // The run started on a release without this step: it replays without it.
        const t = state.step(s.id);
        t.status = 'skipped';
        t.skipReason = `not in the release this upgrade started on (${s.patch})`;
        continue;
      }
      await s.before?.(rt);
      gates.checkAbort();
      if (s.window)
        await holdUnlessWindowAllows(ctx, rt.inv.window.end, s.id, s.window.what, () => s.window!.estimate(rt));
      await runOne(ctx, rt, exposure, s, abortStopsStep);
      untilDone.add(s.id);
      const waiting = beside.get(s.id);
      if (waiting) {
        gates.checkAbort();
        // Only the first attempt is the run that overlapped; an operator's retry runs anew.
        await runStep(upgradeHost(ctx), waiting.step.id, async (key) => {
          const r = key === runKey(waiting.step.id, 0) ? await waiting.first : await waiting.step.run(rt, key);
          if (r instanceof Error) throw r;
          return r as Awaited<ReturnType<RunbookStep['run']>>;
        });
      }
    }
  } finally {
    leaving = true;
    // An abort must not leave a probe loading the VIP until its own time limit.
    if (rt.probe) {
      const probe = rt.probe;
      rt.probe = undefined;
      await probe.stop().catch(() => undefined);
    }
  }
}

/**
 * A beside step run again and again, each run under its own key (so an activity retry reattaches
 * to its own run and never starts a second copy), until `stop` says its `until` step is done.
 * The first failing run fails the step. The summary says how many runs there were and when the
 * first started and the last ended (workflow time), which is the overlap the operator sees.
 */
async function repeatUntil(s: RunbookStep, rt: RunContext, stop: () => boolean): Promise<Outcome> {
  const key0 = runKey(s.id, 0);
  const first = Date.now();
  let last: Outcome;
  let runs = 0;
  do {
    last = await s.run(rt, runs === 0 ? key0 : `${key0}.r${runs}`);
    runs += 1;
  } while (!stop());
  const at = (ms: number) => new Date(ms).toISOString();
  return {
    ...last,
    summary: `${runs} runs from ${at(first)} to ${at(Date.now())}, each passed; the last: ${last.summary}`,
  };
}

/**
 * Every step is also a safe point for an abort; its marks tell the abort what to put right. With
 * `stoppable`, an abort also cancels the step's activity or child where it stands.
 */
async function runOne(
  ctx: StepContext,
  rt: RunContext,
  exposure: Exposure,
  s: RunbookStep,
  stoppable: boolean,
): Promise<void> {
  const { gates } = ctx;
  gates.checkAbort();
  if (!stoppable) return runMarked(ctx, rt, exposure, s);
  const scope = new CancellationScope();
  gates.onAbort = () => scope.cancel();
  try {
    await scope.run(() => runMarked(ctx, rt, exposure, s));
  } catch (err) {
    const by = gates.abortRequestedBy;
    // Only this step's scope was cancelled, by the abort: unwind as an abort. A cancel of the
    // whole workflow stays a cancel, and is cleaned up by novaUpgrade's cancel path.
    if (isCancellation(err) && by && !CancellationScope.current().consideredCancelled)
      throw new AbortRequested(by.by, by.reason);
    throw err;
  } finally {
    gates.onAbort = undefined;
  }
}

async function runMarked(ctx: StepContext, rt: RunContext, exposure: Exposure, s: RunbookStep): Promise<void> {
  const { during = [], sets = [], clears = [] } = s.exposes ?? {};
  await runStep(
    upgradeHost(ctx),
    s.id,
    async (key) => {
      for (const m of [...during, ...sets]) exposure.mark(m);
      const out = await s.run(rt, key);
      for (const m of [...during, ...clears]) exposure.clear(m);
      return out;
    },
    { ...(s.choices ? { choices: s.choices } : {}), ...(s.onAction ? { onAction: (a) => s.onAction!(rt, a) } : {}) },
  );
}

async function finished(notifier: WebhookNotifier, state: UpgradeState, message: string): Promise<void> {
  notifier.send('finish', { message, command: `nova-upgrade status ${state.progress.workflowId}` });
  await notifier.settle();
}

function result(state: UpgradeState, status: 'completed' | 'aborted', done: string[]): UpgradeResult {
  const p = state.progress;
  // The steps as the progress answer bounds them: a fleet's batch steps counted, not listed
  // (each batch's detail is in its child), so the result stays far under 256 KiB at any size.
  const bounded = progressAnswer(p);
  return {
    status,
    cloud: p.cloud,
    from: p.from,
    to: p.to,
    steps: bounded.steps,
    ...(bounded.batchSteps ? { batchSteps: bounded.batchSteps } : {}),
    approvals: p.approvals,
    warnings: p.warnings,
    done,
    ...(p.probe ? { probe: p.probe } : {}),
  };
}
