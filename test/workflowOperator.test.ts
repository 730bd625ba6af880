// What an operator gets besides gates and holds, on the real Temporal server with scripted
// activities: webhook notifications (the real activity, to a receiver on 127.0.0.1), the
// maintenance window's end, the command audit log (`history`) and `watch`, both run as the
// CLI subprocess an operator would run.
import { execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Context } from '@temporalio/activity';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createNotifyActivities } from '../activities/notify/webhook';
import type { CommandAudit } from '../client/history';
import { validateInventory } from '../inventory/load';
import type { Inventory } from '../inventory/schema';
import {
  approveUpdate,
  decideUpdate,
  type NotifyEvent,
  type Phase,
  type UpgradeInput,
  type UpgradeResult,
} from '../common/messages';
import type { UpgradeState } from '../workflows/state';
import { batchEstimate } from '../workflows/window';
import {
  liveScript,
  newScript,
  scriptedActivities,
  untilProbeStop,
  useProbeClient,
  type Script,
} from './helpers/scriptedActivities';
import { sharedTemporal, workflowBundle } from './temporalEnv';
import { untilProgress } from './helpers/progress';
import { runCli, type CliRun } from './helpers/cli';
import { novaUpgrade } from '../workflows/upgrade';

Runtime.install({ logger: new DefaultLogger('WARN') });

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const taskQueue = `wf-operator-${randomUUID()}`;
let address: string;
let client: Client;
let nativeConnection: NativeConnection;
let worker: Worker;
let workerRun: Promise<void>;
let script: Script = newScript();
let receiver: Server;
let webhookBase: string;
const received: { path: string; body: NotifyEvent }[] = [];

function inventory(overrides: Record<string, unknown> = {}): Inventory {
  const raw = parse(readFileSync('examples/seed-two-node.yaml', 'utf8')) as Record<string, unknown>;
  return validateInventory({
    ...raw,
    cloud: `op${randomUUID().slice(0, 8)}`,
    retry: { maximumAttempts: 1, initialIntervalSeconds: 1 },
    ...overrides,
  });
}

async function start(autoApprove: Phase[], inv: Inventory): Promise<WorkflowHandle> {
  const input: UpgradeInput = { inventory: inv, autoApprove, startedBy: 'test' };
  return client.workflow.start(novaUpgrade, { taskQueue, workflowId: `nova-upgrade-${inv.cloud}`, args: [input] });
}

async function eventsFor(workflowId: string, count: number): Promise<NotifyEvent[]> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const mine = received.filter((r) => r.body.workflowId === workflowId).map((r) => r.body);
    if (mine.length >= count || Date.now() > deadline) return mine;
    await sleep(100);
  }
}

function cli(...args: string[]): Promise<CliRun> {
  return runCli([...args, '--address', address, '--task-queue', taskQueue], { NOVA_UPGRADE_OPERATOR: 'test-operator' });
}

beforeAll(async () => {
  const t = sharedTemporal();
  address = t.address;
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString('utf8')));
    req.on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(body) as NotifyEvent });
      res.writeHead(req.url?.startsWith('/fail') ? 500 : 204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  webhookBase = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  nativeConnection = await NativeConnection.connect({ address });
  client = new Client({ connection: await Connection.connect({ address }), namespace: t.namespace });
  useProbeClient(client);
  // Getters, so each test's fresh script reaches the activities the worker already holds.
  const live = liveScript(() => script);
  worker = await Worker.create({
    connection: nativeConnection,
    namespace: t.namespace,
    taskQueue,
    workflowBundle: workflowBundle(),
    maxHeartbeatThrottleInterval: '500ms',
    activities: { ...scriptedActivities(live), ...createNotifyActivities() },
  });
  workerRun = worker.run();
});

afterAll(async () => {
  worker?.shutdown();
  await workerRun;
  await nativeConnection?.close();
  await client?.connection.close();
  await new Promise((r) => receiver?.close(r));
});

describe('approve and decide by signal', () => {
  it('the CLI sends them with --signal; the workflow applies them, and records a wrong one as a warning', async () => {
    script = newScript();
    script.failures.set('syncApiDb', 1);
    const h = await start(['before-window', 'during-window', 'after-window'], inventory());
    await untilProgress(h, (p) => p.pendingApproval?.phase === 'before-upgrade', 'the first gate');
    const missing = await cli('approve', h.workflowId, '--signal');
    expect(missing.code).toBe(2);
    expect(missing.stderr.trim()).toBe(
      'nova-upgrade: approve --signal needs --phase: without a worker nothing can tell which gate is pending',
    );
    // A signal cannot be refused: one for the wrong phase is recorded as a warning and changes nothing.
    expect((await cli('approve', h.workflowId, '--signal', '--phase', 'after-window')).code).toBe(0);
    const warned = await untilProgress(
      h,
      (p) => p.warnings.some((w) => w.includes('ignored approve signal')),
      'the warning',
    );
    expect(warned.warnings).toContain(
      'ignored approve signal from test-operator: the pending gate is before-upgrade, not after-window',
    );
    expect(warned.pendingApproval?.phase).toBe('before-upgrade');
    const sent = await cli('approve', h.workflowId, '--signal', '--phase', 'before-upgrade', '--comment', 'CHG-7');
    expect(sent.stdout.trim()).toBe(
      'sent the approval of before-upgrade as a signal; the workflow records it when a worker runs it ("status" shows it)',
    );
    await untilProgress(h, (p) => p.pendingDecision?.stepId === 'api-db-sync', 'the hold at api-db-sync');
    expect((await cli('retry', h.workflowId, '--signal', '--step', 'api-db-sync')).code).toBe(0);
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    expect(result.approvals[0]).toMatchObject({
      phase: 'before-upgrade',
      approver: 'test-operator',
      comment: 'CHG-7',
      auto: false,
    });
    expect(result.steps.find((s) => s.id === 'api-db-sync')).toMatchObject({ status: 'succeeded', operatorRetries: 1 });
  });
});

describe('webhook notifications', () => {
  it('posts every gate, hold and the finish with the command that answers it, and the audit log shows what ran', async () => {
    script = newScript();
    script.failures.set('syncApiDb', 1);
    // The URL carries its token; the inventory names only the variable the worker reads it from.
    const token = `tok-${randomUUID()}`;
    process.env.NOVA_UPGRADE_TEST_WEBHOOK = `${webhookBase}/hook?token=${token}`;
    const inv = inventory({ notify: { webhookUrlEnv: 'NOVA_UPGRADE_TEST_WEBHOOK' } });
    const h = await start(['before-window', 'during-window', 'after-window'], inv);
    const id = h.workflowId;
    const [gate] = await eventsFor(id, 1);
    expect(gate).toMatchObject({
      event: 'gate',
      workflowId: id,
      cloud: inv.cloud,
      phase: 'before-upgrade',
      command: `nova-upgrade approve ${id} --phase before-upgrade --comment "..."`,
    });
    expect(gate!.message).toBe(`${inv.cloud}: phase before-upgrade waits for approval`);
    await h.executeUpdate(approveUpdate, { args: [{ phase: 'before-upgrade', approver: 'alice' }] });
    await untilProgress(h, (p) => p.status === 'held', 'the hold at api-db-sync');
    const hold = (await eventsFor(id, 2))[1];
    expect(hold).toMatchObject({
      event: 'hold',
      phase: 'before-window',
      step: 'api-db-sync',
      command: `nova-upgrade retry ${id}`,
    });
    expect(hold!.commands).toEqual([
      `nova-upgrade retry ${id}`,
      `nova-upgrade skip ${id} --reason "..."`,
      `nova-upgrade abort ${id}`,
    ]);
    expect(hold!.message).toMatch(
      /held at api-db-sync: nova-manage api_db sync on controller: syncApiDb failed as scripted/,
    );
    await h.executeUpdate(decideUpdate, { args: [{ action: 'retry', by: 'alice' }] });
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    const events = await eventsFor(id, 3);
    expect(events.map((e) => e.event)).toEqual(['gate', 'hold', 'finish']);
    expect(events[2]).toMatchObject({
      event: 'finish',
      command: `nova-upgrade status ${id}`,
      message: `nova 30.0.0 → 31.0.0 on ${inv.cloud} completed`,
    });
    expect(received.filter((r) => r.body.workflowId === id).every((r) => r.path === `/hook?token=${token}`)).toBe(true);
    // Neither workflow input, activity input nor any result in the whole history carries it.
    const histories = [await h.fetchHistory()];
    for (const e of histories[0]!.events ?? []) {
      const child = e.childWorkflowExecutionStartedEventAttributes?.workflowExecution;
      if (child) histories.push(await client.workflow.getHandle(child.workflowId!, child.runId!).fetchHistory());
    }
    expect(histories.length).toBeGreaterThan(2);
    // Payloads are JSON bytes inside the protobuf: a grep of the encoded history finds any string.
    const plain = histories
      .map((x) => Buffer.from(temporal.api.history.v1.History.encode(x).finish()).toString('latin1'))
      .join('');
    expect(plain).toContain('NOVA_UPGRADE_TEST_WEBHOOK');
    expect(plain).not.toContain(token);
    expect(result.warnings.filter((w) => /notification/.test(w))).toEqual([]);

    // The audit log, as the operator reads it: parent and compute-batch children, in order.
    const json = await cli('history', id, '--json');
    expect(json.code, json.stderr).toBe(0);
    const audit = JSON.parse(json.stdout) as CommandAudit;
    const sync = audit.commands.filter((c) => c.activity === 'syncApiDb');
    expect(sync).toHaveLength(1);
    expect(sync[0]).toMatchObject({
      workflowId: id,
      node: 'controller',
      command: '/opt/stack/data/venv/bin/nova-manage api_db sync',
      exitCode: 0,
      durationMs: 12,
      summary: 'nova-manage api_db sync',
    });
    const inBatches = audit.commands.filter((c) => c.workflowId.startsWith(`${id}/compute-batch-`));
    expect(inBatches.map((c) => `${c.activity} ${c.node}`)).toContain('installCode apicomp');
    expect(inBatches.find((c) => c.activity === 'installCode')?.summary).toMatch(/^install nova 31\.0\.0 on /);
    expect(audit.commands.map((c) => c.at)).toEqual([...audit.commands.map((c) => c.at)].sort());
    expect(audit.failedActivities).toMatchObject([
      { activity: 'syncApiDb', summary: 'nova-manage api_db sync', error: 'syncApiDb failed as scripted' },
    ]);
    const table = await cli('history', id);
    expect(table.stdout).toMatch(
      /nova-manage api_db sync\n {4}controller\s+exit 0\s+12 ms\s+\/opt\/stack\/data\/venv\/bin\/nova-manage api_db sync/,
    );
    expect(table.stdout).toMatch(/install nova 31\.0\.0 on apicomp {2}\[compute-batch-2\/r0\]/);
    expect(table.stdout).toContain('Failed activity attempts');
    const missing = await cli('history', 'nova-upgrade-no-such-cloud');
    expect(missing.stderr.trim()).toBe(
      'nova-upgrade: no upgrade with workflow id "nova-upgrade-no-such-cloud"; "nova-upgrade list" shows them',
    );
  });

  it('a receiver that fails costs a warning, never a hold or the upgrade', async () => {
    script = newScript();
    process.env.NOVA_UPGRADE_TEST_WEBHOOK_FAIL = `${webhookBase}/fail`;
    const inv = inventory({ notify: { webhookUrlEnv: 'NOVA_UPGRADE_TEST_WEBHOOK_FAIL' } });
    const started = Date.now();
    const h = await start(['before-upgrade', 'before-window', 'during-window', 'after-window'], inv);
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('completed');
    expect(result.warnings).toContainEqual(
      `finish notification NOT delivered to ${webhookBase} after 3 attempt(s): HTTP 500`,
    );
    expect((await eventsFor(h.workflowId, 3)).map((e) => e.event)).toEqual(['finish', 'finish', 'finish']);
    expect(Date.now() - started).toBeLessThan(60_000);
  });
});

describe('the maintenance window', () => {
  it('does not start a compute batch that cannot finish before the window ends, and says why', async () => {
    script = newScript();
    const h = await start(
      ['before-upgrade', 'before-window', 'during-window'],
      inventory({ window: { end: '2020-01-01T00:00:00Z' } }),
    );
    const held = await untilProgress(h, (p) => p.pendingDecision?.stepId === 'compute-batch:1', 'the window hold');
    expect(held.pendingDecision?.error).toMatch(
      /^the window ends at 2020-01-01T00:00:00\.000Z \(\d+ d( \d+ h)? ago\); batch 1\/2 needs up to 33 min \(estimated from the inventory's timeouts for 1 node: commandSeconds 900, serviceUpSeconds 180, readSeconds 120\), so it was not started$/,
    );
    expect(held.pendingDecision?.choices).toEqual(['retry', 'abort']);
    expect(held.steps.find((s) => s.id === 'compute-batch:1')).toMatchObject({ status: 'held' });
    expect(script.calls.map((c) => c.name)).not.toContain('disableComputeServices');
    await h.executeUpdate(decideUpdate, { args: [{ action: 'retry', by: 'alice' }] });
    // Retry looks again; the window has not moved, so it holds again.
    await sleep(500);
    const again = await untilProgress(h, (p) => p.status === 'held', 'the hold after retry');
    expect(again.pendingDecision?.stepId).toBe('compute-batch:1');
    await h.executeUpdate(decideUpdate, { args: [{ action: 'abort', by: 'alice', reason: 'window over' }] });
    const result = (await h.result()) as UpgradeResult;
    expect(result.status).toBe('aborted');
    expect(script.calls.map((c) => c.name)).not.toContain('stopService');
  });

  it('runs through when the window is long enough', async () => {
    script = newScript();
    const end = new Date(Date.now() + 24 * 3600_000).toISOString();
    const h = await start(
      ['before-upgrade', 'before-window', 'during-window', 'after-window'],
      inventory({ window: { end } }),
    );
    expect(((await h.result()) as UpgradeResult).status).toBe('completed');
  });

  it('estimates from the batches measured so far once there are some', () => {
    const steps = [
      {
        id: 'compute-batch:1',
        status: 'succeeded',
        startedAt: '2025-01-01T00:00:00.000Z',
        endedAt: '2025-01-01T00:04:00.000Z',
      },
      {
        id: 'compute-batch:2',
        status: 'succeeded',
        alreadyDone: true,
        startedAt: '2025-01-01T00:04:00.000Z',
        endedAt: '2025-01-01T00:04:01.000Z',
      },
    ];
    const e = batchEstimate(inventory(), { progress: { steps } } as unknown as UpgradeState, 1);
    expect(e).toEqual({ ms: 300_000, basis: 'measured: the longest of 1 batches so far took 4 min, plus 25%' });
  });
});

describe('watch', () => {
  it('in a pipe prints plain lines on change, with session counts, the probe and the gate', async () => {
    script = newScript();
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    script.overrides = {
      // Holds the window until watch is following, so it sees the drain live.
      upgradePlacement: async () => {
        await released;
        return { summary: 'ok', alreadyDone: false, commands: [] };
      },
      waitForNoSessions: async (input) => {
        const ctx = Context.current();
        for (let left = 3; left >= 0; left--) {
          ctx.heartbeat({
            counts: [
              { lb: 'controller', scur: left, qcur: 0, idleConnections: 0, status: 'UP' },
              { lb: 'apicomp', scur: 0, qcur: 0, idleConnections: 0, status: 'UP' },
            ],
            zeroForMs: 0,
          });
          await sleep(1200);
        }
        return { summary: `${String(input.server)} has no sessions`, counts: [], waitedMs: 4800 };
      },
      runVipProbe: async () => {
        const ctx = Context.current();
        let requests = 0;
        const beat = setInterval(
          () =>
            ctx.heartbeat({
              requests: (requests += 20),
              failedRequests: 0,
              versionDecreases: 0,
              latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 },
              failuresByKind: {},
            }),
          200,
        );
        await untilProbeStop(ctx);
        clearInterval(beat);
        return {
          requests,
          failedRequests: 0,
          failuresByKind: {},
          firstFailures: [],
          latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 },
          versionDecreases: 0,
          maxMicroversionSeen: '2.100',
          requestsByBackend: {},
          perClient: [],
          durationSeconds: 1,
          running: false,
        };
      },
    };
    const h = await start(['before-upgrade', 'before-window', 'during-window'], inventory());
    const started = Date.now();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'client/cli.ts', 'watch', h.workflowId, '--address', address, '--task-queue', taskQueue],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      release();
    });
    child.stderr.on('data', (c: Buffer) => (err += c.toString('utf8')));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code, err).toBe(0);
    expect(Date.now() - started).toBeLessThan(60_000);
    const lines = out.trimEnd().split('\n');
    expect(lines, out).toContain('[running] phase during-window');
    expect(lines).toContain('  … sessions on the drained server: controller 3, apicomp 0');
    expect(lines).toContain('  … sessions on the drained server: controller 1, apicomp 0');
    expect(
      lines.some((l) => /^ {2}… probe through the VIP: \d+ requests, 0 failed, 0 version decreases, p99 3 ms$/.test(l)),
      out,
    ).toBe(true);
    // The probe's request count moves all the time; a pipe gets its line once, not every second.
    expect(lines.filter((l) => l.includes('probe through the VIP')).length).toBe(1);
    expect(lines).toContain('✓ wait until controller has no sessions: succeeded — controller has no sessions');
    expect(lines.slice(-2)).toEqual([
      'Waiting for approval of phase after-window:',
      `  nova-upgrade approve ${h.workflowId} --phase after-window --comment "..."`,
    ]);
    expect(out).not.toContain('\x1b[');
    await h.terminate('test done');
  });

  it('in a terminal redraws one view in place, with the phases and the pending approval', async () => {
    script = newScript();
    const h = await start([], inventory());
    await untilProgress(h, (p) => p.status === 'waiting-approval', 'the first gate');
    const cmd = [
      process.execPath,
      '--import',
      'tsx',
      'client/cli.ts',
      'watch',
      h.workflowId,
      '--address',
      address,
      '--task-queue',
      taskQueue,
    ].join(' ');
    const { stdout } = await run('script', ['-qec', cmd, '/dev/null'], { env: { ...process.env, TERM: 'xterm' } });
    expect(stdout).toContain('\x1b[2J\x1b[H');
    expect(stdout).toContain('phases: ? before-upgrade   · before-window   · during-window   · after-window');
    expect(stdout).toContain(`nova-upgrade approve ${h.workflowId} --phase before-upgrade --comment "..."`);
    await h.terminate('test done');
  });
});
