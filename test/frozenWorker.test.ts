// A worker that stops answering for a while and comes back (a VM pause, a long GC, a partition
// from the server; here SIGSTOP, then SIGCONT) must let the upgrade resume by itself. Frozen for
// longer than the heartbeat timeout, during a detached command (tempest), a drain wait and a
// compute batch: the server times the attempt out and schedules the next one; the thawed
// worker's old attempt hears NOT_FOUND and must leave its remote run to that successor. The
// upgrade completes with no operator action and no step run twice.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { startUpgrade } from '../client/upgrades';
import { loadInventory } from '../inventory/load';
import { labDown, labEvents, labStatus, labUp, type LabInfo } from '../lab/lab';
import { PHASES, progressQuery, type Progress, type UpgradeResult } from '../common/messages';
import { stopWorkerProcess, workerPid } from '../worker/process';
import { sharedTemporal, startSharedWorkerProcess } from './temporalEnv';
import { slowRequestsThrough } from './helpers/slowRequests';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'frozen-worker-'));
const labDir = join(dir, 'lab');
const taskQueue = `frozen-worker-${randomUUID()}`;
let client: Client;
let lab: LabInfo;

/** Longer than the inventory's heartbeat timeout (5 s below): the server gives the attempt up. */
const FROZEN_MS = 12_000;

async function until(h: WorkflowHandle, pred: (p: Progress) => boolean, what: string): Promise<Progress> {
  const deadline = Date.now() + 240_000;
  while (Date.now() < deadline) {
    const p = await Promise.race([h.query(progressQuery).catch(() => undefined), sleep(4000).then(() => undefined)]);
    if (p?.status === 'held') throw new Error(`held at ${p.pendingDecision?.stepId}: ${p.pendingDecision?.error}`);
    if (p && pred(p)) return p;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const running = (p: Progress, prefix: string) => p.steps.some((s) => s.id.startsWith(prefix) && s.status === 'running');

beforeAll(async () => {
  const t = sharedTemporal();
  client = new Client({ connection: await Connection.connect({ address: t.address }), namespace: t.namespace });
  lab = await labUp({ stateDir: labDir, subnet: '127.0.9' });
  await startSharedWorkerProcess(dir, taskQueue);
}, 180_000);

afterAll(async () => {
  const pid = workerPid(dir);
  if (pid) process.kill(pid, 'SIGCONT');
  await stopWorkerProcess(dir);
  await client?.connection.close();
  await labDown(labDir);
  if (!process.env.NOVA_UPGRADE_KEEP_TEST_STATE) rmSync(dir, { recursive: true, force: true });
}, 120_000);

it(
  'resumes without an operator after the worker is frozen past its heartbeat timeout three times',
  async () => {
    const inv = loadInventory(lab.inventoryPath);
    inv.cloud = 'frozen-worker';
    inv.timeouts.heartbeatSeconds = 5;
    // The probe lives in the frozen worker too; what clients see is the other tests' concern.
    inv.probe.enabled = false;
    // Wide enough windows to freeze in: a tempest run that takes 8 s more, a 6 s drain settle
    // (which applies once a session opened since the drain).
    inv.commands.tempest = `sleep 8 && ${inv.commands.tempest}`;
    inv.timeouts.settleSeconds = 6;
    // Requests of 2.5 s in flight through the VIP keep each drain wait open long enough to be
    // frozen in: since HAProxy's counters prove a drain at its first reading, a wait with no
    // session ended before the 100 ms polling below saw it (30 Nov CI: "timed out waiting for a
    // drain wait"). The same load as test/crash.test.ts.
    const slow = slowRequestsThrough(lab.vipUrl);
    const h = await startUpgrade(client, taskQueue, inv, { autoApprove: [...PHASES] });
    const pid = workerPid(dir)!;
    const freeze = async (at: Progress) => {
      process.kill(pid, 'SIGSTOP');
      await sleep(FROZEN_MS);
      process.kill(pid, 'SIGCONT');
      return at.currentStep ?? '?';
    };
    const frozenAt: string[] = [];
    frozenAt.push(await freeze(await until(h, (p) => running(p, 'tempest-before'), 'tempest (a detached command)')));
    frozenAt.push(await freeze(await until(h, (p) => running(p, 'compute-batch:'), 'a compute batch')));
    frozenAt.push(await freeze(await until(h, (p) => running(p, 'wait-sessions:'), 'a drain wait')));
    const result = (await h.result()) as UpgradeResult;
    await slow.stop();
    expect(result.status).toBe('completed');
    expect(workerPid(dir)).toBe(pid);

    // No step ran twice: every service started exactly twice (the lab's start, then one restart
    // on the new code), and every step succeeded at its first operator attempt.
    const starts: string[] = [];
    for (const n of labStatus(labDir).nodes) {
      for (const s of n.services) {
        const count = labEvents(labDir, n.name).filter((e) => e.verb === 'start' && e.unit === s.unit).length;
        if (count !== 2) starts.push(`${n.name}/${s.unit} started ${count} times`);
      }
    }
    expect(starts).toEqual([]);
    expect(result.steps.filter((s) => s.operatorRetries > 0 || s.status !== 'succeeded').map((s) => s.id)).toEqual([]);
    const attempts = result.steps.filter((s) => s.attempts > 1).map((s) => `${s.id} ×${s.attempts}`);
    console.log(
      `frozen ${FROZEN_MS} ms at ${frozenAt.join(', ')}; steps with more than one attempt: ${attempts.join(', ') || 'none'}`,
    );
  },
  10 * 60_000,
);
