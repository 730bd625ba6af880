// The Temporal server restarts mid-upgrade (same SQLite file), and the operator's `watch` is
// SIGKILLed mid-upgrade and started again. The file runs its OWN dev server (own state dir and
// ports, so the run's shared one is never stopped), a lab on 127.0.7.x and a worker process;
// every gate is auto-approved. It shows the upgrade completes with every service restarted
// exactly once, no request through the VIP failing (an independent probe), and the second
// `watch`, which lives through the server restart, ending with the completion line.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { VipProbe } from '../activities/http/probe';
import { findFreePort, startDevServer, stopDevServer } from '../client/devServer';
import { startUpgrade } from '../client/upgrades';
import { loadInventory } from '../inventory/load';
import { labDown, labEvents, labStatus, labUp, type LabInfo } from '../lab/lab';
import { PHASES, progressQuery, type Progress, type UpgradeResult } from '../common/messages';
import { startWorkerProcess, stopWorkerProcess, workerPid } from '../worker/process';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'server-restart-'));
const serverDir = join(dir, 'temporal');
const labDir = join(dir, 'lab');
const taskQueue = `server-restart-${randomUUID()}`;
let port: number;
let address: string;
let client: Client | undefined;
let lab: LabInfo;
const watchers: ChildProcess[] = [];

async function connect(): Promise<Client> {
  return new Client({ connection: await Connection.connect({ address }), namespace: 'default' });
}

async function startServer(): Promise<void> {
  await startDevServer({ stateDir: serverDir, port, headless: true });
}

async function startWorker() {
  const bundle = inject('workflowBundlePath');
  return startWorkerProcess({
    dir,
    address,
    namespace: 'default',
    taskQueue,
    ...(bundle ? { workflowBundlePath: bundle } : {}),
  });
}

/** `nova-upgrade watch` as the operator runs it: a subprocess whose output is collected. */
function watch(id: string): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'client/cli.ts', 'watch', id, '--address', address, '--task-queue', taskQueue],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  watchers.push(child);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, output: () => out, exited };
}

async function progressOf(h: WorkflowHandle): Promise<Progress | undefined> {
  return Promise.race([h.query(progressQuery).catch(() => undefined), sleep(5000).then(() => undefined)]);
}

async function until(
  h: WorkflowHandle,
  pred: (p: Progress) => boolean,
  what: string,
  timeoutMs = 180_000,
): Promise<Progress> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const p = await progressOf(h);
    if (p?.status === 'held') throw new Error(`held at ${p.pendingDecision?.stepId}: ${p.pendingDecision?.error}`);
    if (p && pred(p)) return p;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const running = (p: Progress, prefix: string) => p.steps.some((s) => s.id.startsWith(prefix) && s.status === 'running');

beforeAll(async () => {
  port = await findFreePort();
  address = `127.0.0.1:${port}`;
  await startServer();
  lab = await labUp({ stateDir: labDir, subnet: '127.0.7' });
  await startWorker();
}, 180_000);

afterAll(async () => {
  for (const w of watchers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  await stopWorkerProcess(dir);
  await client?.connection.close().catch(() => undefined);
  await stopDevServer(serverDir);
  await labDown(labDir);
  if (!process.env.NOVA_UPGRADE_KEEP_TEST_STATE) rmSync(dir, { recursive: true, force: true });
}, 120_000);

it(
  'completes through a dev server restart and a killed watch, restarting every service once with no failed request',
  async () => {
    client = await connect();
    const inv = loadInventory(lab.inventoryPath);
    inv.cloud = 'server-restart';
    // Tempest before the upgrade gives both watches its 2-3 s to start and render (a tsx CLI
    // takes about that) before the window.
    inv.tempest.enabled = true;
    // A worker that loses the server mid-activity has its heartbeats refused; keep the resulting waits short.
    inv.timeouts.heartbeatSeconds = 5;
    inv.timeouts.readSeconds = 10;
    inv.timeouts.settleSeconds = 2;
    const probe = new VipProbe({
      url: lab.vipUrl,
      paths: ['/', '/v2.1/', '/v2.1/servers'],
      ratePerSecond: 30,
      clients: 4,
      requestTimeoutMs: 10_000,
      maxDurationMs: 10 * 60_000,
    });
    probe.start();
    const workerBefore = workerPid(dir);
    const h = await startUpgrade(client, taskQueue, inv, { autoApprove: [...PHASES] });
    const id = h.workflowId;

    // The operator's watch dies mid-upgrade; a second one, started beside it, carries on. The
    // second must be following before the server stops: a first connection that fails is not
    // waited for (connectClient: exit 1 naming the address), and a watch started only after the
    // kill lost that race once the restarts ran at once (compute-batch:1, where the server
    // stops, now begins about 3 s into the window, sooner than a tsx CLI renders).
    const first = watch(id);
    const second = watch(id);
    const rendered = async (w: ReturnType<typeof watch>, text: string) => {
      for (const t = Date.now(); !w.output().includes(text); await sleep(50))
        if (Date.now() - t > 60_000) throw new Error(`the watch never printed "${text}": ${w.output()}`);
    };
    await rendered(second, '] phase ');
    const killedAt = await until(h, (p) => p.phase === 'during-window', 'the maintenance window');
    await rendered(first, '[running] phase during-window');
    first.child.kill('SIGKILL');
    await first.exited;
    expect(first.child.signalCode).toBe('SIGKILL');

    // Stop the server while a compute batch runs (a child workflow with activities in flight).
    const at = await until(h, (p) => running(p, 'compute-batch:'), 'a compute batch');
    const stepAtStop = at.currentStep!;
    await client.connection.close();
    client = undefined;
    const stopped = Date.now();
    const stop = await stopDevServer(serverDir);
    expect(stop.wasRunning).toBe(true);
    await sleep(5000);
    const restartAt = Date.now();
    await startServer();
    const serverUpMs = Date.now() - restartAt;
    client = await connect();
    const h2 = client.workflow.getHandle(id);
    // Recovered: the worker answers a query again, and then the step it stopped in finishes.
    const answered = await until(h2, () => true, 'a query answered after the restart', 120_000);
    const answeredMs = Date.now() - restartAt;
    expect(answered.steps.find((s) => s.id === stepAtStop)?.status).not.toBe('pending');
    await until(h2, (p) => p.steps.find((s) => s.id === stepAtStop)?.status === 'succeeded', `${stepAtStop} to finish`);
    const stepDoneMs = Date.now() - restartAt;
    const workerAfter = workerPid(dir);

    const result = (await h2.result()) as UpgradeResult;
    const snap = await probe.stop();
    const code = await Promise.race([second.exited, sleep(30_000).then(() => 'still running')]);

    const status = labStatus(labDir);
    const starts: string[] = [];
    for (const n of status.nodes) {
      const events = labEvents(labDir, n.name);
      for (const s of n.services) {
        const count = events.filter((e) => e.verb === 'start' && e.unit === s.unit).length;
        if (count !== 2) starts.push(`${n.name}/${s.unit} started ${count} times`);
      }
    }
    const workerLog = readFileSync(join(dir, 'worker.log'), 'utf8');
    console.log(
      [
        `server stopped at ${stepAtStop} for ${restartAt - stopped} ms (stop took ${stop.killed ? 'a SIGKILL' : 'a SIGTERM'}); back up in ${serverUpMs} ms`,
        `after the restart: first query answered in ${answeredMs} ms, ${stepAtStop} finished in ${stepDoneMs} ms`,
        `worker: pid ${workerBefore} before, ${workerAfter} after (${workerBefore === workerAfter ? 'same process, reconnected by itself' : 'restarted'}); worker log lines: ${workerLog.split('\n').length}`,
        `watch: first killed during ${killedAt.currentStep}; second exited ${String(code)}; its waiting lines: ${second
          .output()
          .split('\n')
          .filter((l) => l.startsWith('(waiting'))
          .join(' / ')}; its last line: ${second.output().trim().split('\n').pop()}`,
        `probe: ${snap.requests} requests, ${snap.failedRequests} failed; workflow probe ${JSON.stringify(result.probe)}`,
        `steps found already done: ${
          result.steps
            .filter((s) => s.alreadyDone)
            .map((s) => s.id)
            .join(', ') || 'none'
        }`,
      ].join('\n'),
    );
    expect(result.status).toBe('completed');
    expect(workerAfter).toBe(workerBefore);
    expect(starts).toEqual([]);
    expect(
      status.nodes.every(
        (n) =>
          n.codeVersion === '31.0.0' && n.services.every((s) => s.activeState === 'active' && s.version === '31.0.0'),
      ),
    ).toBe(true);
    expect(snap.failedRequests, JSON.stringify(snap.firstFailures)).toBe(0);
    expect(code).toBe(0);
    expect(second.output()).toContain(`upgrade ${id} completed: completed`);
    // The first watch had followed the upgrade. The second ran across the server restart: the
    // client's own retries carry its calls over the gap, so it may not even print "(waiting: …)".
    expect(first.output()).toContain('[running] phase during-window');
    expect(second.output()).toContain('[running] phase during-window');
  },
  10 * 60_000,
);
