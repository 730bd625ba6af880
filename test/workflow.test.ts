// The workflow's orchestration on the real Temporal server: gates, holds, decisions, aborts and
// the progress query. Activities are scripted here; their effects are tested on real programs.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Context } from '@temporalio/activity';
import {
  Client,
  Connection,
  WorkflowFailedError,
  WorkflowUpdateFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import { temporalCliPath } from '../client/devServer';
import { NativeConnection, Worker, Runtime, DefaultLogger } from '@temporalio/worker';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import {
  abortSignal,
  approveUpdate,
  decideUpdate,
  type Phase,
  type UpgradeInput,
  type UpgradeResult,
} from '../common/messages';
import { liveScript, newScript, scriptedActivities, useProbeClient, type Script } from './helpers/scriptedActivities';
import { sharedTemporal, workflowBundle } from './temporalEnv';
import { untilProgress } from './helpers/progress';
import { novaUpgrade } from '../workflows/upgrade';

Runtime.install({ logger: new DefaultLogger('WARN') });

let client: Client;
let nativeConnection: NativeConnection;
let worker: Worker;
let workerRun: Promise<void>;
let script: Script;
const taskQueue = `wf-test-${randomUUID()}`;

function inventory(overrides: Record<string, unknown> = {}): Inventory {
  const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Record<string, unknown>;
  return validateInventory({
    ...raw,
    cloud: `t${randomUUID().slice(0, 8)}`,
    retry: { maximumAttempts: 1, initialIntervalSeconds: 1 },
    ...overrides,
  });
}

async function start(autoApprove: Phase[], inv = inventory()): Promise<WorkflowHandle> {
  const input: UpgradeInput = { inventory: inv, autoApprove, startedBy: 'test' };
  return client.workflow.start(novaUpgrade, { taskQueue, workflowId: `nova-upgrade-${inv.cloud}`, args: [input] });
}

const calledNames = () => script.calls.map((c) => c.name);

/** The validator's sentence, which the CLI shows as the refusal. */
async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    return (err as WorkflowUpdateFailedError).cause?.message ?? '';
  }
  throw new Error('the update was accepted');
}

beforeAll(async () => {
  const t = sharedTemporal();
  nativeConnection = await NativeConnection.connect({ address: t.address });
  client = new Client({ connection: await Connection.connect({ address: t.address }), namespace: t.namespace });
  useProbeClient(client);
  script = newScript();
  worker = await Worker.create({
    connection: nativeConnection,
    namespace: t.namespace,
    taskQueue,
    workflowBundle: workflowBundle(),
    maxHeartbeatThrottleInterval: '1s',
    activities: scriptedActivities(liveScript(() => script)),
  });
  workerRun = worker.run();
});

// A test that terminates its upgrade mid-step leaves that step's activities running in this
// worker: on a loaded CI machine they started after the next test's newScript() and wrote their
// calls into it (the restarts of "records a skip" showed up first in "runs the whole runbook").
// The server drops a terminated run's tasks not yet handed out, so waiting for the worker's
// in-flight activities is enough.
afterEach(async () => {
  const deadline = Date.now() + 15_000;
  while (worker.getStatus().numInFlightActivities > 0 && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
});

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await nativeConnection?.close();
});

const GENERIC_UP = { summary: 'up', alreadyDone: false, commands: [] };

/** An override that runs until its activity is cancelled, and says whether it was. */
function untilCancelled(seen: { cancelled: boolean; started: boolean }) {
  return async () => {
    const ctx = Context.current();
    seen.started = true;
    const beat = setInterval(() => ctx.heartbeat(), 200);
    try {
      await ctx.cancelled;
    } catch {
      seen.cancelled = true;
    } finally {
      clearInterval(beat);
    }
    throw new Error('cancelled');
  };
}

describe('cancel and abort stop the running step and put right what it left', () => {
  it('a cancel from `temporal workflow cancel` mid-drain leaves no server drained and no probe running', async () => {
    script = newScript();
    const seen = { cancelled: false, started: false };
    script.overrides = { waitForNoSessions: untilCancelled(seen) };
    const h = await start(['before-upgrade', 'before-window', 'during-window', 'after-window']);
    await untilProgress(h, (p) => p.currentStep === 'wait-sessions:controller' && seen.started, 'the drain wait');
    const t = sharedTemporal();
    await promisify(execFile)(temporalCliPath(), [
      'workflow',
      'cancel',
      '--workflow-id',
      h.workflowId,
      '--address',
      t.address,
      '--namespace',
      t.namespace,
    ]);
    const end = await h.result().then(
      () => 'completed',
      (err: unknown) =>
        err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure ? 'cancelled' : String(err),
    );
    expect(end).toBe('cancelled');
    // The cancel reaches the activity with its next heartbeat's answer.
    for (let i = 0; i < 100 && !seen.cancelled; i++) await new Promise((r) => setTimeout(r, 100));
    expect(seen.cancelled).toBe(true);
    const after = script.calls.slice(script.calls.findIndex((c) => c.name === 'waitForNoSessions'));
    // The drained server serves, so it is enabled again and waited on, after the cancel.
    expect(after.map((c) => `${c.name}${c.input.server ? ` ${String(c.input.server)}` : ''}`)).toEqual(
      expect.arrayContaining(['checkApiServesVersion', 'enableApiServer controller', 'waitForServerUp controller']),
    );
    const enables = script.calls.filter((c) => c.name === 'enableApiServer').map((c) => c.input.server);
    expect(enables).toEqual(['controller']);
  });

  it('an abort during a long tempest run stops it where it stands, instead of waiting it out', async () => {
    script = newScript();
    const seen = { cancelled: false, started: false };
    script.overrides = { runTempest: untilCancelled(seen) };
    const h = await start(['before-upgrade']);
    await untilProgress(h, (p) => p.currentStep === 'tempest-before' && seen.started, 'tempest running');
    await h.signal(abortSignal, { by: 'alice', reason: 'change window cancelled' });
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('aborted');
    for (let i = 0; i < 100 && !seen.cancelled; i++) await new Promise((r) => setTimeout(r, 100));
    expect(seen.cancelled).toBe(true);
    expect(result.steps.find((s) => s.id === 'tempest-before')).toMatchObject({
      status: 'failed',
      error: expect.stringMatching(/^stopped: /),
    });
    expect(calledNames()).not.toContain('installCode');
  });
});

describe('novaUpgrade orchestration', () => {
  it('starts no phase before its approval and refuses an approval for the wrong phase', async () => {
    script = newScript();
    const h = await start([]);
    const p = await untilProgress(h, (x) => x.status === 'waiting-approval', 'the first gate');
    expect(p.pendingApproval?.phase).toBe('before-upgrade');
    expect(p.pendingApproval?.command).toBe(
      `nova-upgrade approve ${h.workflowId} --phase before-upgrade --comment "..."`,
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(script.calls).toEqual([]);

    expect(
      await refusal(h.executeUpdate(approveUpdate, { args: [{ phase: 'during-window', approver: 'alice' }] })),
    ).toBe('the pending gate is before-upgrade, not during-window');
    const rec = await h.executeUpdate(approveUpdate, {
      args: [{ phase: 'before-upgrade', approver: 'alice', comment: 'go' }],
    });
    expect(rec).toMatchObject({ phase: 'before-upgrade', approver: 'alice', comment: 'go', auto: false });
    const atSecond = await untilProgress(h, (x) => x.pendingApproval?.phase === 'before-window', 'the second gate');
    expect(
      await refusal(h.executeUpdate(approveUpdate, { args: [{ phase: 'before-upgrade', approver: 'bob' }] })),
    ).toBe('phase before-upgrade is already approved');
    expect(atSecond.steps.filter((s) => s.phase === 'before-upgrade').every((s) => s.status === 'succeeded')).toBe(
      true,
    );
    expect(atSecond.steps.filter((s) => s.phase !== 'before-upgrade').every((s) => s.status === 'pending')).toBe(true);
    expect(calledNames()).toEqual([
      'checkNodesAccessChunk',
      'checkCells',
      'checkServiceVersions',
      'checkLoadBalancers',
      'runTempest',
      'checkApiServesVersion',
      'checkApiServesVersion',
    ]);
    expect(calledNames()).not.toContain('installCode');
    await h.terminate('test done');
  });

  it("holds a failed step, refuses a skip without a reason, and retries on the operator's word", async () => {
    script = newScript();
    script.failures.set('syncApiDb', 1);
    const h = await start(['before-upgrade', 'before-window']);
    const held = await untilProgress(h, (x) => x.status === 'held', 'the hold');
    expect(held.pendingDecision).toMatchObject({ stepId: 'api-db-sync', choices: ['retry', 'skip', 'abort'] });
    expect(held.steps.find((s) => s.id === 'api-db-sync')).toMatchObject({
      status: 'held',
      error: expect.stringContaining('syncApiDb failed as scripted'),
    });
    expect(await refusal(h.executeUpdate(decideUpdate, { args: [{ action: 'skip', by: 'alice' }] }))).toMatch(
      /skip needs a reason/,
    );
    expect(
      await refusal(
        h.executeUpdate(decideUpdate, { args: [{ action: 'retry', stepId: 'db-sync-cells', by: 'alice' }] }),
      ),
    ).toBe('the held step is api-db-sync, not db-sync-cells');
    await h.executeUpdate(decideUpdate, { args: [{ action: 'retry', by: 'alice' }] });
    const after = await untilProgress(h, (x) => x.pendingApproval?.phase === 'during-window', 'the window gate');
    expect(after.steps.find((s) => s.id === 'api-db-sync')).toMatchObject({
      status: 'succeeded',
      operatorRetries: 1,
      attempts: 2,
    });
    const keys = script.calls.filter((c) => c.name === 'syncApiDb').map((c) => c.input.key as string);
    // An operator retry must be a new run on the node, not a reattach to the failed one.
    expect(keys).toHaveLength(2);
    expect(keys[0]).not.toBe(keys[1]);
    await h.terminate('test done');
  });

  it('restarts the control services at once; one that fails is held by name, and a retry restarts only it', async () => {
    script = newScript();
    script.failures.set('restartServiceChecked', 1);
    script.failWhen = (c) => c.input.unit === 'devstack@n-sch';
    const h = await start(['before-upgrade', 'before-window', 'during-window']);
    const held = await untilProgress(h, (x) => x.status === 'held', 'the hold');
    expect(held.pendingDecision?.stepId).toBe('restart-control-services');
    const step = held.steps.find((s) => s.id === 'restart-control-services')!;
    expect(step.error).toMatch(/restart failed for devstack@n-sch on controller: .*failed as scripted/);
    expect(step.error).toContain('restarted devstack@n-api-meta on controller, devstack@n-novnc-cell1 on controller');
    // The conductors' step ran before, both at once, and is done.
    expect(held.steps.find((s) => s.id === 'restart-conductors')?.status).toBe('succeeded');
    const restarts = () =>
      script.calls.filter((c) => c.name === 'restartServiceChecked').map((c) => c.input.unit as string);
    expect(restarts()).toEqual([
      'devstack@n-super-cond',
      'devstack@n-cond-cell1',
      'devstack@n-sch',
      'devstack@n-api-meta',
      'devstack@n-novnc-cell1',
    ]);
    await h.executeUpdate(decideUpdate, { args: [{ action: 'retry', by: 'alice' }] });
    await untilProgress(
      h,
      (x) => x.steps.find((s) => s.id === 'restart-control-services')?.status === 'succeeded',
      'the retried restarts',
    );
    // Only the unit that failed is restarted again, under a new key (a new run on the node).
    expect(restarts().slice(5)).toEqual(['devstack@n-sch']);
    const keys = script.calls
      .filter((c) => c.name === 'restartServiceChecked' && c.input.unit === 'devstack@n-sch')
      .map((c) => c.input.key as string);
    expect(new Set(keys).size).toBe(2);
    await h.terminate('test done');
  });

  it("syncs every cell's database at once; a cell that fails is held by name, and a retry syncs only it", async () => {
    script = newScript();
    script.failures.set('syncCellDb', 1);
    script.failWhen = (c) => c.input.cell === 'cell0';
    const h = await start(['before-upgrade', 'before-window']);
    const held = await untilProgress(h, (x) => x.status === 'held', 'the hold');
    expect(held.pendingDecision?.stepId).toBe('db-sync-cells');
    const step = held.steps.find((s) => s.id === 'db-sync-cells')!;
    expect(step.error).toMatch(/: nova-manage db sync failed in cell0: .*failed as scripted.*; synced cell1$/);
    const syncs = () => script.calls.filter((c) => c.name === 'syncCellDb').map((c) => c.input.cell as string);
    expect(syncs()).toEqual(['cell0', 'cell1']);
    await h.executeUpdate(decideUpdate, { args: [{ action: 'retry', by: 'alice' }] });
    const p = await untilProgress(
      h,
      (x) => x.steps.find((s) => s.id === 'db-sync-cells')?.status === 'succeeded',
      'the retried sync',
    );
    // Only the cell that failed is synced again, under a new key (a new run on the node).
    expect(syncs()).toEqual(['cell0', 'cell1', 'cell0']);
    const keys = script.calls.filter((c) => c.name === 'syncCellDb').map((c) => c.input.key as string);
    expect(new Set(keys).size).toBe(3);
    // The retry's summary is the one cell's (two would read "ok; ok").
    expect(p.steps.find((s) => s.id === 'db-sync-cells')?.summary).toBe('ok');
    await h.terminate('test done');
  });

  it('records a skip with its reason and goes on', async () => {
    script = newScript();
    script.failures.set('runUpgradeCheck', Infinity);
    const h = await start(['before-upgrade', 'before-window', 'during-window']);
    await untilProgress(h, (x) => x.pendingDecision?.stepId === 'upgrade-check', 'the hold at upgrade-check');
    await h.executeUpdate(decideUpdate, { args: [{ action: 'skip', reason: 'checked by hand', by: 'alice' }] });
    const p = await untilProgress(
      h,
      (x) => x.steps.find((s) => s.id === 'restart-conductors')?.status === 'succeeded',
      'the conductor restart',
    );
    expect(p.steps.find((s) => s.id === 'upgrade-check')).toMatchObject({
      status: 'skipped',
      skipReason: 'checked by hand (by alice)',
    });
    await h.terminate('test done');
  });

  it('runs the whole runbook in order when every gate is auto-approved', async () => {
    script = newScript();
    // The seed's literal order, one API server after another (monotonic is the default).
    const inv = inventory({ haproxy: { backend: 'nova-api', drainMode: 'weight', switchover: 'rolling' } });
    const h = await start(['before-upgrade', 'before-window', 'during-window', 'after-window'], inv);
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    expect(result.steps.every((s) => s.status === 'succeeded')).toBe(true);
    expect(result.approvals.map((a) => [a.phase, a.auto])).toEqual([
      ['before-upgrade', true],
      ['before-window', true],
      ['during-window', true],
      ['after-window', true],
    ]);
    const names = calledNames();
    // A new run restarts in one activity (restartServiceChecked, issue 16), never the old pair.
    // A compute batch still reads each nova-compute's state before it stops it: a retry of the
    // batch compares the running process with that record (issue 12), and stop and start are
    // separate there, with the install between them.
    expect(
      script.calls
        .filter((c) => c.name === 'readServiceState' && !String(c.input.command).endsWith(' devstack@n-cpu'))
        .map((c) => String(c.input.command)),
    ).toEqual([]);
    expect(names).not.toContain('restartService');
    const restarts = script.calls.filter((c) => c.name === 'restartServiceChecked').map((c) => c.input.unit);
    expect(restarts.slice(0, 2)).toEqual(['devstack@n-super-cond', 'devstack@n-cond-cell1']);
    // Every nova-api restart happens after every compute is back, and each API server is drained first.
    const lastComputeStart = names.lastIndexOf('startService');
    const firstApiRestart = script.calls.findIndex(
      (c) => c.name === 'restartServiceChecked' && c.input.unit === 'devstack@n-api',
    );
    expect(lastComputeStart).toBeLessThan(firstApiRestart);
    const drains = script.calls.filter((c) => c.name === 'drainApiServer').map((c) => c.input.server);
    expect(drains).toEqual(['controller', 'apicomp']);
    expect(names.indexOf('runVipProbe')).toBeLessThan(names.indexOf('upgradePlacement') + 2);
    expect(names.at(-1)).toBe('runOnlineDataMigrations');
    const desc = await h.describe();
    expect(desc.status.name).toBe('COMPLETED');
    const children = [];
    for await (const wf of client.workflow.list({
      query: `WorkflowType = 'upgradeComputeBatch' AND WorkflowId STARTS_WITH '${h.workflowId}/'`,
    }))
      children.push(wf.workflowId);
    // One child workflow per compute batch keeps the parent's history bounded.
    expect(children.sort()).toEqual([`${h.workflowId}/compute-batch-1/r0`, `${h.workflowId}/compute-batch-2/r0`]);
  });

  it('tempest.repeatDuringApi runs tempest again, each run its own key, until the last API server is up', async () => {
    script = newScript();
    // Each run takes a while, so that several fit into the API restarts; the scripted steps are instant.
    const starts: number[] = [];
    let upAt = Infinity;
    script.overrides = {
      runTempest: async (input) => {
        if (String(input.key).includes('tempest-during-api')) {
          starts.push(Date.now());
          await new Promise((r) => setTimeout(r, 400));
        }
        return { summary: 'tempest passed on controller: 29 passed, 0 skipped in 1 s', totals: {}, failingTests: [] };
      },
      waitForServerUp: async (input) => {
        // The last API server comes up only once tempest ran beside the restarts at least twice.
        while (input.server === 'apicomp' && starts.length < 2) await new Promise((r) => setTimeout(r, 100));
        if (input.server === 'apicomp') upAt = Date.now();
        return GENERIC_UP;
      },
    };
    const inv = inventory({
      haproxy: { backend: 'nova-api', drainMode: 'drain', switchover: 'rolling' },
      tempest: { enabled: true, repeatDuringApi: true },
    });
    const h = await start(['before-upgrade', 'before-window', 'during-window', 'after-window'], inv);
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    const keys = script.calls
      .filter((c) => c.name === 'runTempest' && String(c.input.key).includes('tempest-during-api'))
      .map((c) => String(c.input.key));
    expect(keys.length).toBeGreaterThanOrEqual(2);
    // A retry reattaches by key: every run needs its own.
    expect(new Set(keys).size).toBe(keys.length);
    expect(keys).toHaveLength(starts.length);
    // Once apicomp is up no new run starts, but for one the workflow scheduled before it saw that.
    expect(starts.filter((t) => t > upAt).length).toBeLessThanOrEqual(1);
    expect(result.steps.find((x) => x.id === 'tempest-during-api')?.summary).toMatch(
      new RegExp(`^${keys.length} runs from \\S+ to \\S+, each passed; the last: tempest passed`),
    );
  });

  it('abort at a drain hold enables the drained server again and reports what was done', async () => {
    script = newScript();
    script.failures.set('waitForNoSessions', Infinity);
    const h = await start(['before-upgrade', 'before-window', 'during-window']);
    const held = await untilProgress(
      h,
      (x) => x.pendingDecision?.stepId === 'wait-sessions:controller',
      'the drain hold',
    );
    expect(held.pendingDecision?.choices).toEqual(['retry', 'shutdown-sessions', 'skip', 'abort']);
    await h.signal(abortSignal, { by: 'alice', reason: 'window over' });
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('aborted');
    const enables = script.calls.filter((c) => c.name === 'enableApiServer').map((c) => c.input.server);
    expect(enables).toEqual(['controller']);
    expect(result.done).toContainEqual('enabled controller again on every LB (it was drained when the abort came)');
    expect(calledNames().filter((n) => n.startsWith('hupService'))).toEqual([]);
  });

  it('abort at a failed compute batch starts its nova-compute again and re-enables it for scheduling', async () => {
    script = newScript();
    script.failures.set('waitForComputesUp', Infinity);
    const h = await start(['before-upgrade', 'before-window', 'during-window']);
    const held = await untilProgress(
      h,
      (x) => x.pendingDecision?.stepId === 'compute-batch:1',
      'the compute batch hold',
    );
    expect(held.pendingDecision?.error).toMatch(/batch 1\/2 failed at "wait until controller report up/);
    const before = script.calls.length;
    await h.signal(abortSignal, { by: 'alice' });
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('aborted');
    const undo = script.calls.slice(before);
    expect(undo.map((c) => [c.name, c.input.unit ?? c.input.hosts])).toEqual([
      ['startService', 'devstack@n-cpu'],
      ['enableComputeServices', ['controller']],
    ]);
    expect(result.done).toContain('enabled controller for scheduling again');
  });

  it('holds when the VIP probe saw failed requests', async () => {
    script = newScript();
    script.overrides = {
      runVipProbe: () => ({
        requests: 500,
        failedRequests: 3,
        failuresByKind: { http5xx: 3 },
        firstFailures: [{ at: 'now', client: 0, path: '/', kind: 'http5xx', reason: 'HTTP 503' }],
        latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 },
        versionDecreases: 0,
        maxMicroversionSeen: '2.100',
        requestsByBackend: {},
        perClient: [],
        durationSeconds: 1,
        running: false,
      }),
    };
    const h = await start(['before-upgrade', 'before-window', 'during-window']);
    const held = await untilProgress(h, (x) => x.status === 'held', 'the probe hold');
    expect(held.pendingDecision?.stepId).toBe('vip-probe-result');
    expect(held.pendingDecision?.error).toMatch(
      /^3 of 500 requests through the VIP failed \(allowed: 0\); first: http5xx on \/: HTTP 503/,
    );
    expect(held.probe).toMatchObject({ requests: 500, failedRequests: 3 });
    await h.terminate('test done');
  });

  it('refuses a decision when nothing is held', async () => {
    script = newScript();
    const h = await start([]);
    await untilProgress(h, (x) => x.status === 'waiting-approval', 'the first gate');
    expect(await refusal(h.executeUpdate(decideUpdate, { args: [{ action: 'retry', by: 'alice' }] }))).toBe(
      'no step is held waiting for a decision',
    );
    await h.terminate('test done');
  });
});
