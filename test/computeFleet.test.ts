// Compute batches at fleet shape, on the real Temporal server with scripted activities: a
// batch's nodes run at once up to `compute.parallel`; a node that fails is held by itself
// while its batch-mates finish; skip leaves it disabled and reported; an operator's retry does
// not stop again a nova-compute that already runs a process started since the batch began.
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { NativeConnection, Worker, Runtime, DefaultLogger } from '@temporalio/worker';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import { decideUpdate, progressQuery, type Phase, type UpgradeInput, type UpgradeResult } from '../common/messages';
import { liveScript, newScript, scriptedActivities, useProbeClient, type Script } from './helpers/scriptedActivities';
import { sharedTemporal, workflowBundle } from './temporalEnv';
import { untilProgress } from './helpers/progress';
import { novaUpgrade } from '../workflows/upgrade';
import { compactInventory } from '../common/nodeRuns';
import { sshTargetFor } from '../common/sshTarget';

Runtime.install({ logger: new DefaultLogger('WARN') });

let client: Client;
let nativeConnection: NativeConnection;
let worker: Worker;
let workerRun: Promise<void>;
let script: Script;
const taskQueue = `fleet-test-${randomUUID()}`;
const ALL: Phase[] = ['before-upgrade', 'before-window', 'during-window', 'after-window'];

/** The seed's two nodes plus `extra` compute-only nodes (addresses in this file's subnet). */
function inventory(extra: number, compute: Record<string, unknown>, release?: { from: string; to: string }): Inventory {
  const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Record<string, unknown>;
  if (release) raw.release = release;
  const nodes = [...(raw.nodes as unknown[])];
  for (let i = 1; i <= extra; i++) nodes.push({ name: `c${i}`, address: `127.0.41.${i}`, roles: ['compute'] });
  return validateInventory({
    ...raw,
    cloud: `f${randomUUID().slice(0, 8)}`,
    retry: { maximumAttempts: 1, initialIntervalSeconds: 1 },
    compute,
    nodes,
  });
}

async function start(inv: Inventory, compact = false, autoApprove = ALL): Promise<WorkflowHandle> {
  const input: UpgradeInput = { inventory: compact ? compactInventory(inv) : inv, autoApprove, startedBy: 'test' };
  return client.workflow.start(novaUpgrade, { taskQueue, workflowId: `nova-upgrade-${inv.cloud}`, args: [input] });
}

const nodeOf = (input: Record<string, unknown>) => (input.target as { node: string }).node;
const calls = (name: string) => script.calls.filter((c) => c.name === name);

/** installCode takes 300 ms and records when it ran, so overlap can be measured. */
function timedInstall(spans: { node: string; from: number; to: number }[]) {
  return async (input: Record<string, unknown>) => {
    const from = Date.now();
    await new Promise((r) => setTimeout(r, 300));
    spans.push({ node: nodeOf(input), from, to: Date.now() });
    return { summary: 'installed', alreadyDone: false, commands: [] };
  };
}

/** The most spans running at one instant (a span that meets several others in turn counts once). */
function maxOverlap(spans: { from: number; to: number }[]): number {
  let peak = 0;
  for (const s of spans) peak = Math.max(peak, spans.filter((o) => o.from <= s.from && o.to > s.from).length);
  return peak;
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

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await nativeConnection?.close();
});

describe('compute batches at fleet shape', () => {
  it('runs a batch’s installs at once, up to compute.parallel', async () => {
    script = newScript();
    const spans: { node: string; from: number; to: number }[] = [];
    script.overrides = { installCode: timedInstall(spans) };
    // Only the compute-only nodes in the batch: their installs are the batch's alone.
    const h = await start(inventory(6, { batchSize: 8, parallel: 4, exclude: ['controller', 'apicomp'] }));
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    // The compute-only nodes install only in their batch; 6 of them overlap 4 at a time.
    const computeOnly = spans.filter((s) => /^c\d$/.test(s.node));
    expect(computeOnly.map((s) => s.node).sort()).toEqual(['c1', 'c2', 'c3', 'c4', 'c5', 'c6']);
    expect(maxOverlap(computeOnly)).toBe(4);
    const p = await h.query(progressQuery);
    expect(p).toMatchObject({ compute: { nodesDone: 6, batchesDone: 1 } });
    expect(p.compute.failedNodes).toBeUndefined();
    // The computes' SIGHUP runs in their batch's child, not as one parent step per compute.
    // One parent step SIGHUPs everything at once: the batch's child beside the nodes' exchanges.
    const hupSteps = result.steps.map((s) => s.id).filter((id) => id.startsWith('hup'));
    expect(hupSteps).toEqual(['hup-all']);
    const children = ((await h.fetchHistory()).events ?? []).flatMap((e) =>
      e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowId
        ? [e.startChildWorkflowExecutionInitiatedEventAttributes.workflowId]
        : [],
    );
    expect(children.filter((id) => id.includes('/hup-computes-'))).toEqual([`${h.workflowId}/hup-computes-1/r0`]);
    // The excluded controller and apicomp are HUPed with the other services, one exchange per
    // node; the batch's nodes are not.
    const grouped = calls('hupServices').map((c) => [nodeOf(c.input), c.input.hups]);
    expect(grouped.map(([n]) => n).sort()).toEqual(['apicomp', 'controller']);
    for (const [, hups] of grouped) expect(JSON.stringify(hups)).toContain('devstack@n-cpu');
    const hups = calls('hupService').map((c) => nodeOf(c.input));
    for (const n of ['c1', 'c2', 'c3', 'c4', 'c5', 'c6'])
      expect(hups.filter((x) => x === n).length, n).toBeGreaterThanOrEqual(1);
    // Search attributes are upserted when they change, not twice per step.
    const events = (await h.fetchHistory()).events ?? [];
    // The workflow's own upserts: each new patch() adds the SDK's TemporalChangeVersion upsert too.
    const upserts = events.filter(
      (e) => e.upsertWorkflowSearchAttributesEventAttributes?.searchAttributes?.indexedFields?.UpgradeStep,
    ).length;
    console.log(`parent: ${events.length} events, ${upserts} upserts, ${result.steps.length} steps`);
    // Before, every step upserted twice (starting and done): 2 × steps at least.
    expect(upserts).toBeLessThan(result.steps.length * 1.5);
  });

  it('takes a batch out of scheduling beside its installs, and stops no node before its instances’ tasks ended', async () => {
    script = newScript();
    const spans: { node: string; from: number; to: number }[] = [];
    const stops: { node: string; at: number }[] = [];
    let tasksEnded = 0;
    script.overrides = {
      installCode: timedInstall(spans),
      // A live migration on one of the batch's hosts ends 1.5 s into the batch.
      waitForNoTasksInProgress: async () => {
        await new Promise((r) => setTimeout(r, 1500));
        tasksEnded = Date.now();
        return { summary: 'no server tasks in progress', polls: 4, commands: [] };
      },
      stopService: (input) => {
        stops.push({ node: nodeOf(input), at: Date.now() });
        return { summary: 'stopped', alreadyDone: false, commands: [] };
      },
    };
    const h = await start(inventory(3, { batchSize: 3, exclude: ['controller', 'apicomp'] }));
    expect(((await h.result()) as UpgradeResult).status).toBe('completed');
    const installs = spans.filter((s) => /^c\d$/.test(s.node));
    expect(installs).toHaveLength(3);
    // The installs ran while the batch waited for the migration, not after it…
    for (const i of installs) expect(i.to, i.node).toBeLessThan(tasksEnded);
    // …and no nova-compute was stopped before it ended.
    const batchStops = stops.filter((s) => /^c\d$/.test(s.node));
    expect(batchStops.map((s) => s.node).sort()).toEqual(['c1', 'c2', 'c3']);
    for (const s of batchStops) expect(s.at, s.node).toBeGreaterThanOrEqual(tasksEnded);
  });

  it('a batch whose disable fails is held whole, with no node of it stopped', async () => {
    script = newScript();
    script.failures.set('disableComputeServices', Infinity);
    const h = await start(inventory(3, { batchSize: 3, exclude: ['controller', 'apicomp'] }));
    const held = await untilProgress(h, (p) => p.pendingDecision?.stepId === 'compute-batch:1', 'the batch hold');
    expect(held.pendingDecision?.error).toMatch(/failed at "disable c1, c2, c3 for scheduling"/);
    // The installs beside it only put code on disk; nothing was stopped, started or enabled.
    expect(
      calls('installCode')
        .map((c) => nodeOf(c.input))
        .filter((n) => /^c\d$/.test(n))
        .sort(),
    ).toEqual(['c1', 'c2', 'c3']);
    expect(calls('stopService')).toEqual([]);
    expect(calls('startService')).toEqual([]);
    expect(calls('waitForNoTasksInProgress')).toEqual([]);
    await h.executeUpdate(decideUpdate, { args: [{ action: 'abort', by: 'alice' }] });
    expect(((await h.result()) as UpgradeResult).status).toBe('aborted');
  });

  it('a batch whose every node fails before its stop still waits for its own disable and task wait', async () => {
    script = newScript();
    let tasksEnded = 0;
    script.failures.set('installCode', Infinity);
    script.failWhen = (c) => c.name === 'installCode' && /^c\d$/.test(nodeOf(c.input));
    script.overrides = {
      waitForNoTasksInProgress: async () => {
        await new Promise((r) => setTimeout(r, 1500));
        tasksEnded = Date.now();
        return { summary: 'no server tasks in progress', polls: 4, commands: [] };
      },
    };
    const h = await start(inventory(2, { batchSize: 2, exclude: ['controller', 'apicomp'] }));
    const held = await untilProgress(h, (p) => p.pendingDecision?.stepId === 'compute-batch:1', 'the node hold');
    expect(held.pendingDecision?.error).toMatch(/^(c[12]) \(\1\) failed at "install nova 31\.0\.0 on \1"/);
    // The child returned its failed nodes only once its gate had ended: no activity of it runs on.
    expect(tasksEnded).toBeGreaterThan(0);
    expect(calls('stopService')).toEqual([]);
    await h.executeUpdate(decideUpdate, { args: [{ action: 'abort', by: 'alice' }] });
    expect(((await h.result()) as UpgradeResult).status).toBe('aborted');
  });

  it("logs in to the next batch's nodes while a batch installs; a warm-up that fails costs nothing", async () => {
    script = newScript();
    const warmed: { nodes: string[]; at: number }[] = [];
    const firstOnNode = new Map<string, number>();
    script.overrides = {
      openConnections: (input) => {
        warmed.push({ nodes: (input.targets as { node: string }[]).map((t) => t.node), at: Date.now() });
        throw new Error('compute-ok: no route to host');
      },
      installCode: (input) => {
        if (!firstOnNode.has(nodeOf(input))) firstOnNode.set(nodeOf(input), Date.now());
        return { summary: 'installed', alreadyDone: false, commands: [] };
      },
    };
    // Two batches, c1-c3 and c4-c6.
    const h = await start(inventory(6, { batchSize: 3, exclude: ['controller', 'apicomp'] }));
    expect(((await h.result()) as UpgradeResult).status).toBe('completed');
    // The first batch logged in to the second's nodes before the second began; the last, to none.
    expect(warmed.map((w) => w.nodes)).toEqual([['c4', 'c5', 'c6']]);
    expect(warmed[0]!.at).toBeLessThan(firstOnNode.get('c4')!);
    expect(warmed[0]!.at).toBeGreaterThanOrEqual(firstOnNode.get('c3')!);
    const p = await h.query(progressQuery);
    expect(p).toMatchObject({ compute: { nodesDone: 6 } });
    expect(p.compute.failedNodes).toBeUndefined();
  });

  it('holds a failed node by itself while its batch-mates finish; skip leaves it disabled and reported', async () => {
    script = newScript();
    script.failures.set('installCode', 1);
    script.failWhen = (c) => c.name === 'installCode' && nodeOf(c.input) === 'c2';
    const h = await start(inventory(6, { batchSize: 4 }));
    const held = await untilProgress(h, (p) => p.pendingDecision?.stepId === 'compute-batch:1', 'the node hold');
    expect(held.pendingDecision?.error).toMatch(
      /^c2 \(c2\) failed at "install nova 31\.0\.0 on c2": .*the rest of its batch finished/,
    );
    // Its batch-mates finished: enabled again, and c2 never was.
    const enabled = calls('enableComputeServices').flatMap((c) => c.input.hosts as string[]);
    expect(enabled.sort()).toEqual(['apicomp', 'c1', 'controller']);
    expect(calls('stopService').map((c) => nodeOf(c.input))).not.toContain('c2');
    // The second batch waits for the operator's answer.
    expect(calls('disableComputeServices').map((c) => c.input.hosts)).toEqual([['controller', 'apicomp', 'c1', 'c2']]);
    await h.executeUpdate(decideUpdate, {
      args: [{ action: 'skip', reason: 'DIMM errors, replace first', by: 'alice' }],
    });
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    expect(calls('enableComputeServices').flatMap((c) => c.input.hosts as string[])).not.toContain('c2');
    const step = result.steps.find((s) => s.id === 'compute-batch:1');
    expect(step?.summary).toMatch(/skipped c2: left on nova 30\.0\.0, disabled for scheduling/);
    const p = await h.query(progressQuery);
    expect(p).toMatchObject({
      compute: {
        nodesDone: 7,
        failedNodes: [{ node: 'c2', status: 'skipped', reason: 'DIMM errors, replace first', by: 'alice', batch: 1 }],
        batches: [
          { index: 1, nodes: 4, done: 3, failed: 1, skipped: 1, status: 'done' },
          { index: 2, nodes: 4, done: 4, failed: 0, skipped: 0, status: 'done' },
        ],
      },
    });
  });

  it('SIGHUPs every service in one step; a node whose HUP fails is named with its batch, and a retry HUPs only it', async () => {
    script = newScript();
    script.failures.set('hupService', 1);
    script.failWhen = (c) => c.name === 'hupService' && nodeOf(c.input) === 'c5';
    const h = await start(inventory(6, { batchSize: 4 }));
    const held = await untilProgress(h, (p) => p.pendingDecision?.stepId === 'hup-all', 'the SIGHUP hold');
    expect(held.pendingDecision?.error).toMatch(/^SIGHUP failed on c5 \(batch 2\): .*a retry does only these$/);
    const hups = () => calls('hupService').map((c) => nodeOf(c.input));
    // Both batches' children ran, beside the controller's exchange: every other node was HUPed once.
    expect(hups().sort()).toEqual(['apicomp', 'c1', 'c2', 'c3', 'c4', 'c5', 'c6', 'controller']);
    expect(calls('hupServices').map((c) => nodeOf(c.input))).toEqual(['controller']);
    await h.executeUpdate(decideUpdate, { args: [{ action: 'retry', by: 'alice' }] });
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    expect(hups().slice(8)).toEqual(['c5']);
    expect(calls('hupServices')).toHaveLength(1);
    expect(result.steps.find((s) => s.id === 'hup-all')).toMatchObject({ status: 'succeeded', operatorRetries: 1 });
  });

  it('to nova 34, nova-compute is restarted after the window instead of SIGHUPed (34 does not reload it on SIGHUP)', async () => {
    script = newScript();
    script.overrides = {
      readCodeVersion: () => ({ summary: 'ok', alreadyDone: false, commands: [], version: '34.0.0' }),
    };
    // apicomp excluded from the batches: its nova-compute is restarted by the parent's step.
    const h = await start(inventory(3, { batchSize: 2, exclude: ['apicomp'] }, { from: '33.0.2', to: '34.0.0' }));
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    // No nova-compute got a SIGHUP, by itself or in a node's exchange; the other services did.
    expect(calls('hupService')).toEqual([]);
    const hupped = calls('hupServices').flatMap((c) => (c.input.hups as { unit: string }[]).map((x) => x.unit));
    expect(hupped).not.toContain('devstack@n-cpu');
    expect(hupped).toContain('devstack@n-sch');
    // Each compute's restart after the window: in its batch's child, or the parent's for apicomp.
    const after = calls('restartServiceChecked').filter((c) => /hup-computes-|hup-all/.test(c.input.key as string));
    expect(after.map((c) => nodeOf(c.input)).sort()).toEqual(['apicomp', 'c1', 'c2', 'c3', 'controller']);
    for (const c of after) expect(c.input.unit).toBe('devstack@n-cpu');
    expect(result.steps.find((s) => s.id === 'hup-all')?.summary).toMatch(/restarted nova-compute on/);
  });

  it('a retry of a node whose nova-compute already restarted since the batch began does not stop it again', async () => {
    script = newScript();
    // nova-compute's process: a new pid after each start, as systemd would report it.
    const starts = new Map<string, number>();
    let firstWait = true;
    script.overrides = {
      startService: (input) => {
        starts.set(nodeOf(input), (starts.get(nodeOf(input)) ?? 0) + 1);
        return { summary: 'started', alreadyDone: false, commands: [] };
      },
      readServiceState: (input) => ({
        summary: 'state',
        commands: [],
        mainPid: 100 + (starts.get(nodeOf(input)) ?? 0),
        activeState: 'active',
        subState: 'running',
        startedMonotonic: 1 + (starts.get(nodeOf(input)) ?? 0),
      }),
      // c3's first heartbeat is late: it is held after its restart, its batch-mates go on.
      waitForComputesUp: (input) => {
        const hosts = input.hosts as string[];
        if (firstWait && hosts.includes('c3')) {
          firstWait = false;
          return { summary: 'partly', polls: 3, commands: [], notUp: [{ host: 'c3', why: 'after 1 s: c3 is down' }] };
        }
        return { summary: 'up', polls: 1, commands: [] };
      },
    };
    const h = await start(inventory(4, { batchSize: 3 }));
    const held = await untilProgress(h, (p) => p.pendingDecision?.stepId === 'compute-batch:2', 'the c3 hold');
    expect(held.pendingDecision?.error).toMatch(/c3 \(c3\) failed at "wait until up": after 1 s: c3 is down/);
    await h.executeUpdate(decideUpdate, { args: [{ action: 'retry', by: 'alice' }] });
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    const onC3 = script.calls.filter((c) => (c.input.target as { node?: string } | undefined)?.node === 'c3');
    expect(onC3.filter((c) => c.name === 'stopService')).toHaveLength(1);
    expect(onC3.filter((c) => c.name === 'startService')).toHaveLength(1);
    // The retry read c3's state and waited for its heartbeat again, then enabled it.
    expect(onC3.filter((c) => c.name === 'readServiceState')).toHaveLength(2);
    expect(calls('enableComputeServices').map((c) => c.input.hosts)).toContainEqual(['c3']);
    const p = await h.query(progressQuery);
    expect(p).toMatchObject({ compute: { nodesDone: 6, failedNodes: [{ node: 'c3', status: 'done' }] } });
  });

  it('starts no new batch once the failure budget is exceeded; abort leaves the later batches untouched', async () => {
    script = newScript();
    script.failures.set('installCode', 1);
    script.failWhen = (c) => c.name === 'installCode' && nodeOf(c.input) === 'c2';
    const h = await start(inventory(6, { batchSize: 2, maxFailedNodes: 0, exclude: ['controller', 'apicomp'] }));
    await untilProgress(h, (p) => p.pendingDecision?.stepId === 'compute-batch:1', 'the c2 hold');
    // c1, c2's batch-mate, finished.
    expect(calls('enableComputeServices').map((c) => c.input.hosts)).toEqual([['c1']]);
    await h.executeUpdate(decideUpdate, { args: [{ action: 'skip', reason: 'broken disk', by: 'alice' }] });
    const held = await untilProgress(h, (p) => p.pendingDecision?.stepId === 'compute-batch:2', 'the budget hold');
    expect(held.pendingDecision?.error).toBe(
      '1 compute node failed (c2), more than compute.maxFailedNodes allows (0): batch 2 does not start by itself; retry starts it anyway',
    );
    expect(held.pendingDecision?.choices).toEqual(['retry', 'abort']);
    // No new batch started: nothing was disabled, installed or restarted on c3..c6.
    expect(calls('disableComputeServices').map((c) => c.input.hosts)).toEqual([['c1', 'c2']]);
    expect(script.calls.filter((c) => /^c[3-6]$/.test(String((c.input.target as { node?: string })?.node)))).toEqual(
      [],
    );
    await h.executeUpdate(decideUpdate, { args: [{ action: 'abort', by: 'alice' }] });
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('aborted');
    expect(calls('disableComputeServices').map((c) => c.input.hosts)).toEqual([['c1', 'c2']]);
    // The skipped node stays disabled and is reported.
    expect(calls('enableComputeServices').flatMap((c) => c.input.hosts as string[])).not.toContain('c2');
    const p = await h.query(progressQuery);
    expect(p.compute.failedNodes).toMatchObject([{ node: 'c2', status: 'skipped', reason: 'broken disk' }]);
    // The aborted upgrade's result reports it too: its batch's step names the skipped node, and
    // the batch counts it; batch 2 never started.
    const step = result.steps.find((s) => s.id === 'compute-batch:1');
    expect(step?.summary).toMatch(/skipped c2: left on nova 30\.0\.0, disabled for scheduling/);
    expect(p.compute.batches).toEqual([
      expect.objectContaining({ index: 1, nodes: 2, done: 1, failed: 1, skipped: 1 }),
    ]);
  });

  it('a fleet sent compact checks every node, in chunks, as the full inventory names them; a refusal names its node', async () => {
    // 205 compute-only nodes (c1 … c205 at 127.0.41.1 …), left out of the batches: only the
    // preflight, which logs in to every node of the inventory, meets them.
    const names = Array.from({ length: 205 }, (_, i) => `c${i + 1}`);
    const inv = inventory(205, { batchSize: 2, exclude: names });
    const compact = compactInventory(inv);
    expect(compact.nodeRuns.map((r) => r.count)).toEqual([1, 1, 205]);
    expect(JSON.stringify(compact).length).toBeLessThan(JSON.stringify(inv).length / 5);
    const toGate = async (h: WorkflowHandle) =>
      untilProgress(h, (p) => p.pendingApproval?.phase === 'before-window' || p.status === 'held', 'the next gate');
    // The calls run at once: in the inventory's order by their first node.
    const order = (t: { node: string }) => inv.nodes.findIndex((n) => n.name === t.node);
    const chunks = () =>
      calls('checkNodesAccessChunk')
        .map((c) => (c.input.nodes as { target: { node: string } }[]).map((n) => n.target))
        .sort((a, b) => order(a[0]!) - order(b[0]!));
    script = newScript();
    const full = await start(inv, false, ['before-upgrade']);
    await toGate(full);
    const fromFull = chunks();
    await full.terminate('compared');
    script = newScript();
    const h = await start({ ...inv, cloud: `${inv.cloud}c` }, true, ['before-upgrade']);
    const p = await toGate(h);
    expect(p.steps.find((s) => s.id === 'check-node-access')).toMatchObject({
      status: 'succeeded',
      summary:
        'logged in to all 207 node(s) as root in 2 calls of up to 200; sudo works without a password on the 207 that use it',
    });
    // Two calls: 200 nodes, then 7; every node once, with the target the full inventory gives it.
    const fromCompact = chunks();
    expect(fromCompact.map((c) => c.length)).toEqual([200, 7]);
    expect(fromCompact).toEqual(fromFull);
    expect(fromCompact.flat()).toEqual(inv.nodes.map((n) => sshTargetFor(inv, n)));
    await h.terminate('compared');

    // One node of the second chunk refused: the step holds naming it, and nothing changed.
    script = newScript();
    script.overrides = {
      checkNodesAccessChunk: (input) => {
        const nodes = input.nodes as { target: { node: string }; sudo: boolean }[];
        const bad = nodes.some((n) => n.target.node === 'c203');
        return {
          summary: 'scripted',
          checked: nodes.length - (bad ? 1 : 0),
          sudo: nodes.length - (bad ? 1 : 0),
          loginUsers: ['root'],
          refused: bad
            ? [{ node: 'c203', error: 'sudo on c203 asks root for a password', type: 'SshSudoNeedsPassword' }]
            : [],
          commands: [],
        };
      },
    };
    const refused = await start({ ...inv, cloud: `${inv.cloud}r` }, true, ['before-upgrade']);
    const held = await toGate(refused);
    expect(held.pendingDecision?.error).toBe(
      '1 of 207 node(s) cannot be used: sudo on c203 asks root for a password [SshSudoNeedsPassword] [SshNodeAccessRefused]',
    );
    expect(calls('checkNodesAccessChunk')).toHaveLength(2);
    expect(script.calls.filter((c) => c.name !== 'checkNodesAccessChunk' && c.name !== 'notifyWebhook')).toEqual([]);
    await refused.terminate('done');
  });
});
