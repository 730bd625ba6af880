// nova's zero-downtime upgrade, phase by phase, each behind an operator's approval.
import { executeChild, workflowInfo } from '@temporalio/workflow';
import type { Inventory } from '../inventory/schema';
import type { Phase, UpgradeInput, UpgradeResult } from './definitions';
import { PHASES } from './definitions';
import { AbortRequested, Gates } from './gates';
import { WebhookNotifier } from './notify';
import { Ops, type ServerWeights } from './ops';
import { computeBatches, drainedServices, inPlaceRestarts, planUpgrade } from './plan';
import { UpgradeState } from './state';
import { describeFailure, runKey, runStep, type Outcome, type StepContext } from './steps';
import type { ComputeBatchInput, ComputeBatchResult } from './computeBatch';
import { batchEstimate, drainEstimate, holdUnlessWindowAllows } from './window';

/** What the workflow changed that an abort must not leave half-done. */
interface Exposure {
  drained: Map<string, { node: string }>;
  /** Services a step may have left stopped (a restart or a compute batch in progress). */
  services: Map<string, { node: string; unit: string }>;
  /** Compute hosts disabled for scheduling by a batch that has not finished. */
  disabledComputes: Set<string>;
}

export async function novaUpgrade(input: UpgradeInput): Promise<UpgradeResult> {
  const inv = input.inventory;
  const plan = planUpgrade(inv);
  const batches = computeBatches(inv);
  const state = new UpgradeState(input, plan, batches.reduce((n, b) => n + b.nodes.length, 0), batches.length);
  const ops = new Ops(inv);
  const notifier = new WebhookNotifier(ops, state, inv.notify.webhookUrl);
  const gates = new Gates(state, input.autoApprove, notifier);
  const ctx: StepContext = { state, gates };
  const exposure: Exposure = { drained: new Map(), services: new Map(), disabledComputes: new Set() };
  const done: string[] = [];
  state.publish();

  const phases: Record<Phase, () => Promise<void>> = {
    'before-upgrade': () => beforeUpgrade(ctx, ops, inv),
    'before-window': () => beforeWindow(ctx, ops, inv),
    'during-window': () => duringWindow(ctx, ops, inv, exposure),
    'after-window': () => afterWindow(ctx, ops, inv),
  };
  try {
    for (const phase of PHASES) {
      state.enterPhase(phase);
      await gates.waitForApproval(phase, phase === 'during-window' || phase === 'after-window' ? [...state.progress.warnings] : []);
      await phases[phase]();
      done.push(`phase ${phase} completed`);
    }
    state.progress.status = 'completed';
    delete state.progress.currentStep;
    state.publish();
    await finished(notifier, state, `nova ${inv.release.from} → ${inv.release.to} on ${inv.cloud} completed`);
    return result(state, 'completed', done);
  } catch (err) {
    if (!(err instanceof AbortRequested)) throw err;
    state.progress.status = 'aborting';
    state.publish();
    done.push(...(await undoExposure(ops, exposure)));
    state.progress.status = 'aborted';
    state.publish();
    await finished(notifier, state, `upgrade of ${inv.cloud} aborted by ${err.by}${err.reason ? `: ${err.reason}` : ''}`);
    return result(state, 'aborted', [...state.progress.steps.filter((s) => s.status === 'succeeded').map((s) => `${s.id}: ${s.summary ?? 'done'}`), ...done]);
  }
}

async function finished(notifier: WebhookNotifier, state: UpgradeState, message: string): Promise<void> {
  notifier.send('finish', { message, command: `nova-upgrade status ${state.progress.workflowId}` });
  await notifier.settle();
}

function result(state: UpgradeState, status: 'completed' | 'aborted', done: string[]): UpgradeResult {
  const p = state.progress;
  return { status, cloud: p.cloud, from: p.from, to: p.to, steps: p.steps, approvals: p.approvals, warnings: p.warnings, done, ...(p.probe ? { probe: p.probe } : {}) };
}

/**
 * An abort leaves no service stopped that will start, and no API server drained that serves;
 * one that does not serve stays drained and the result says so, since enabling it would fail
 * requests.
 */
async function undoExposure(ops: Ops, exposure: Exposure): Promise<string[]> {
  const notes: string[] = [];
  for (const { node, unit } of exposure.services.values()) {
    try {
      const out = await ops.ensureServiceRunning(node, unit);
      notes.push(out.alreadyDone ? `${unit} on ${node} is running` : `started ${unit} on ${node} again (it was stopped when the abort came)`);
    } catch (err) {
      notes.push(`left ${unit} on ${node} STOPPED: it does not start (${describeFailure(err)})`);
    }
  }
  for (const [server, { node }] of exposure.drained) {
    try {
      await ops.checkApiServes(node, 'any');
      await ops.enable(server);
      await ops.waitUp(server);
      notes.push(`enabled ${server} again on every LB (it was drained when the abort came)`);
    } catch (err) {
      notes.push(`left ${server} DRAINED: its nova-api on ${node} does not serve (${describeFailure(err)})`);
    }
  }
  if (exposure.disabledComputes.size) {
    const hosts = [...exposure.disabledComputes];
    try {
      await ops.enableComputes(hosts);
      notes.push(`enabled ${hosts.join(', ')} for scheduling again`);
    } catch (err) {
      notes.push(`left ${hosts.join(', ')} DISABLED for scheduling (${describeFailure(err)})`);
    }
  }
  return notes;
}

/** Marks what a step may leave half-done until it succeeds, for the abort handler. */
async function exposed<T>(set: { add: () => void; clear: () => void }, fn: () => Promise<T>): Promise<T> {
  set.add();
  const out = await fn();
  set.clear();
  return out;
}

async function beforeUpgrade(ctx: StepContext, ops: Ops, inv: Inventory): Promise<void> {
  const servers = drainedServices(inv).map((d) => d.server);
  await step(ctx, 'check-load-balancers', () => ops.checkLoadBalancers(servers));
  await step(ctx, 'point-endpoint-at-vip', () => ops.pointEndpointAtVip());
  if (inv.tempest.enabled) await step(ctx, 'tempest-before', (key) => ops.runTempest(key));
  for (const n of inv.nodes.filter((x) => x.api)) {
    await step(ctx, `check-api:${n.name}`, () => ops.checkApiServes(n.name, 'any'));
  }
}

async function beforeWindow(ctx: StepContext, ops: Ops, inv: Inventory): Promise<void> {
  await step(ctx, `install-code:${inv.controller}`, (key) => ops.installCode(inv.controller, key));
  await step(ctx, 'api-db-sync', (key) => ops.syncApiDb(key));
  for (const cell of inv.cells) await step(ctx, `db-sync:${cell.name}`, (key) => ops.syncCellDb(cell, key));
}

async function duringWindow(ctx: StepContext, ops: Ops, inv: Inventory, exposure: Exposure): Promise<void> {
  const probe = inv.probe.enabled ? ops.startProbe(() => void (ctx.state.progress.probeStopRequested = true)) : undefined;
  let stopped = false;
  const stopProbe = async () => {
    stopped = true;
    return probe!.stop();
  };
  try {
    await windowSteps(ctx, ops, inv, exposure);
    if (probe) await checkProbe(ctx, ops, inv, await stopProbe());
  } finally {
    // An abort must not leave a probe loading the VIP until its own time limit.
    if (probe && !stopped) await stopProbe().catch(() => undefined);
  }
}

async function checkProbe(ctx: StepContext, ops: Ops, inv: Inventory, outcome: Awaited<ReturnType<ReturnType<Ops['startProbe']>['stop']>>): Promise<void> {
  const { state } = ctx;
  const snap = outcome instanceof Error ? undefined : outcome;
  if (snap) state.progress.probe = { requests: snap.requests, failedRequests: snap.failedRequests, versionDecreases: snap.versionDecreases, latencyMs: snap.latencyMs };
  await step(ctx, 'vip-probe-result', async () => {
    if (!snap) throw new Error(`the VIP probe was lost, so nothing shows what clients saw: ${describeFailure(outcome)}`);
    const counters = await ops.readBackendCounters();
    const hidden = counters.summary;
    if (snap.failedRequests > inv.probe.maxFailures) {
      const first = snap.firstFailures.slice(0, 3).map((f) => `${f.kind} on ${f.path}: ${f.reason}`).join('; ');
      throw new Error(`${snap.failedRequests} of ${snap.requests} requests through the VIP failed (allowed: ${inv.probe.maxFailures}); first: ${first}`);
    }
    const gaps = snap.resumedAfterWorkerLoss ? `, restarted ${snap.resumedAfterWorkerLoss} time(s) after its worker died (unmeasured gaps)` : '';
    return { summary: `${snap.requests} requests through the VIP, ${snap.failedRequests} failed, ${snap.versionDecreases} version decreases, p99 ${snap.latencyMs.p99} ms${gaps}; ${hidden}` };
  });
}

async function windowSteps(ctx: StepContext, ops: Ops, inv: Inventory, exposure: Exposure): Promise<void> {
  const { state } = ctx;
  await step(ctx, 'upgrade-placement', (key) => ops.upgradePlacement(key));
  for (const s of state.progress.steps.filter((x) => x.id.startsWith('pin-compute-rpc:'))) {
    await step(ctx, s.id, () => ops.pinComputeRpc(s.node!));
  }
  await step(ctx, 'upgrade-check', async () => {
    const out = await ops.upgradeCheck();
    for (const w of out.warnings) if (!state.progress.warnings.includes(w)) state.progress.warnings.push(w);
    return out;
  });
  for (const r of inPlaceRestarts(inv)) {
    await step(ctx, `install-code:${r.node}`, (key) => ops.installCode(r.node, key));
    const svc = `${r.node}/${r.unit}`;
    await step(ctx, `restart:${r.node}:${r.unit}`, (key) =>
      exposed({ add: () => exposure.services.set(svc, r), clear: () => exposure.services.delete(svc) }, () => ops.restartService(r.node, r.unit, key)),
    );
  }
  for (const b of computeBatches(inv)) {
    const nodes = b.nodes.map((n) => inv.nodes.find((x) => x.name === n)!);
    const units = nodes.map((n) => ({ node: n.name, unit: n.services.find((sv) => sv.kind === 'compute')!.unit }));
    const mark = {
      add: () => {
        for (const u of units) exposure.services.set(`${u.node}/${u.unit}`, u);
        for (const n of nodes) exposure.disabledComputes.add(n.novaHost);
      },
      clear: () => {
        for (const u of units) exposure.services.delete(`${u.node}/${u.unit}`);
        for (const n of nodes) exposure.disabledComputes.delete(n.novaHost);
      },
    };
    const batchLabel = `batch ${b.index}/${state.progress.compute.batchesTotal}`;
    await holdUnlessWindowAllows(ctx, inv.window.end, `compute-batch:${b.index}`, batchLabel, () => batchEstimate(inv, state, b.nodes.length));
    await step(ctx, `compute-batch:${b.index}`, (key) => exposed(mark, async () => {
      const childInput: ComputeBatchInput = { inventory: ops.inventoryForBatch(b.nodes), batch: b, batches: state.progress.compute.batchesTotal, key };
      const res = await executeChild<(i: ComputeBatchInput) => Promise<ComputeBatchResult>>('upgradeComputeBatch', {
        args: [childInput],
        workflowId: `${workflowInfo().workflowId}/compute-batch-${b.index}/${key.split('/').pop()}`,
        staticSummary: `upgrade nova-compute batch ${b.index}/${state.progress.compute.batchesTotal}: ${b.nodes.join(', ')}`,
      });
      state.progress.compute.batchesDone += 1;
      state.progress.compute.nodesDone += b.nodes.length;
      return { summary: res.summary, alreadyDone: res.alreadyDone };
    }));
  }
  if (inv.tempest.enabled) await step(ctx, 'tempest-after-computes', (key) => ops.runTempest(key));
  await upgradeApiServers(ctx, ops, inv, exposure);
}

/** The seed's "drain connections on n-api while the tempest tests are running", per API node. */
async function upgradeApiServers(ctx: StepContext, ops: Ops, inv: Inventory, exposure: Exposure): Promise<void> {
  const { state } = ctx;
  const drained = drainedServices(inv);
  let weights: ServerWeights = {};
  await step(ctx, 'record-weights', async () => {
    const out = await ops.recordWeights(drained.map((d) => d.server));
    weights = out.weights;
    return out;
  });
  // tempest runs beside the restarts; its outcome is taken, and held on, once they are done.
  let tempestRun: Promise<Outcome | Error> | undefined;
  if (inv.tempest.enabled) {
    const t = state.step('tempest-during-api');
    t.status = 'running';
    t.startedAt = state.now();
    tempestRun = ops.runTempest(runKey('tempest-during-api', 0)).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
  }
  const monotonic = inv.haproxy.switchover === 'monotonic' && drained.length > 1;
  for (const [i, d] of drained.entries()) {
    ctx.gates.checkAbort();
    const firstStep = monotonic && i > 0 ? `wait-sessions:${d.server}` : `drain:${d.server}`;
    await holdUnlessWindowAllows(ctx, inv.window.end, firstStep, `the drain of ${d.server} (API server ${i + 1}/${drained.length})`, () =>
      drainEstimate(inv, state, drained.map((x) => x.server)),
    );
    if (!(monotonic && i > 0)) {
      await step(ctx, `drain:${d.server}`, async () => {
        exposure.drained.set(d.server, { node: d.node });
        return ops.drain(d.server);
      });
    }
    await step(
      ctx,
      `wait-sessions:${d.server}`,
      () => ops.waitForNoSessions(d.server),
      { choices: ['retry', 'shutdown-sessions', 'skip', 'abort'], onAction: async () => void (await ops.shutdownSessions(d.server)) },
    );
    await step(ctx, `install-code:${d.node}`, (key) => ops.installCode(d.node, key));
    const svc = `${d.node}/${d.unit}`;
    // Enabling needs a serving nova-api, so the abort handler only restarts it; it stays drained if it won't serve.
    await step(ctx, `restart:${d.node}:${d.unit}`, (key) =>
      exposed({ add: () => exposure.services.set(svc, d), clear: () => exposure.services.delete(svc) }, () => ops.restartService(d.node, d.unit, key)),
    );
    // A node that fails here stays drained: enabling a broken nova-api would fail requests.
    await step(ctx, `check-api-version:${d.server}`, () => ops.checkApiServes(d.node, 'to'));
    if (monotonic && i === 0) {
      const old = drained.slice(1);
      await step(ctx, 'switch-over', async () => {
        for (const o of old) exposure.drained.set(o.server, { node: o.node });
        const out = await ops.switchOver(d.server, old.map((o) => o.server), weights);
        await ops.saveServerStates();
        exposure.drained.delete(d.server);
        return out;
      });
    } else {
      await step(ctx, `enable:${d.server}`, async () => {
        const out = await ops.enable(d.server, weights);
        await ops.saveServerStates();
        exposure.drained.delete(d.server);
        return out;
      });
    }
    await step(ctx, `wait-up:${d.server}`, () => ops.waitUp(d.server));
  }
  if (tempestRun) {
    const first = tempestRun;
    await step(ctx, 'tempest-during-api', async (key) => {
      // Only the first attempt is the run that overlapped the restarts; a retry runs anew.
      const r = key === runKey('tempest-during-api', 0) ? await first : await ops.runTempest(key);
      if (r instanceof Error) throw r;
      return r;
    });
  }
}

async function afterWindow(ctx: StepContext, ops: Ops, inv: Inventory): Promise<void> {
  for (const n of inv.nodes) {
    for (const s of n.services.filter((x) => x.kind !== 'api' && !x.haproxyServer)) {
      await step(ctx, `hup:${n.name}:${s.unit}`, () => ops.hupService(n.name, s.unit));
    }
  }
  await step(ctx, 'check-orphans', () => ops.checkOrphans());
  await step(ctx, 'online-migrations', (key) => ops.onlineMigrations(key));
}

/** Every step is also a safe point for an abort. */
async function step(ctx: StepContext, id: string, fn: Parameters<typeof runStep>[2], opts?: Parameters<typeof runStep>[3]): Promise<void> {
  ctx.gates.checkAbort();
  await runStep(ctx, id, fn, opts);
}
