// 200 virtual computes of the scale lab (lab/fleet.ts) upgraded end to end by a real worker
// process on the real Temporal server, with an independent probe on the VIP: the worker is
// SIGKILLed in the middle of a compute batch, a new one takes over, and every node's own events
// log shows one stop, one install and one start on the new release: no node that had finished
// was restarted again. Untimed (speed goals live in bench/fleet.ts). It takes 9-14 min on the
// shared 2-core machine (553 s at load 18-23, 829 s at load 30, lab up and down included), so it
// runs only with NOVA_UPGRADE_FLEET=1.
// Subnet 127.2.100 (the lab) and 127.2.101-102 (its computes), inside the scale lab's 127.2.0.0/16.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { VipProbe } from '../activities/http/probe';
import { startUpgrade } from '../client/upgrades';
import { loadInventory } from '../inventory/load';
import { labDown, labEvents, labUp, type LabInfo } from '../lab/lab';
import { PHASES, progressQuery, type Progress, type UpgradeResult } from '../common/messages';
import { startWorkerProcess, workerPid } from '../worker/process';
import { sharedTemporal } from './temporalEnv';
import { computeBatches } from '../common/topology';

const COMPUTES = 200;
const run = process.env.NOVA_UPGRADE_FLEET === '1' ? it : it.skip;
const dir = mkdtempSync(join(tmpdir(), 'fleet-scale-'));
const taskQueue = `fleet-scale-${randomUUID()}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let client: Client | undefined;
let lab: LabInfo | undefined;
let address: string;
let namespace: string;

async function startWorker() {
  const bundle = inject('workflowBundlePath');
  return startWorkerProcess({ dir, address, namespace, taskQueue, ...(bundle ? { workflowBundlePath: bundle } : {}) });
}

async function killWorker(): Promise<void> {
  const pid = workerPid(dir);
  if (!pid) return;
  process.kill(pid, 'SIGKILL');
  while (workerPid(dir)) await sleep(20);
}

beforeAll(async () => {
  if (process.env.NOVA_UPGRADE_FLEET !== '1') return;
  const t = sharedTemporal();
  address = t.address;
  namespace = t.namespace;
  client = new Client({ connection: await Connection.connect({ address }), namespace });
  lab = await labUp({
    stateDir: join(dir, 'lab'),
    subnet: '127.2.100',
    virtualComputes: COMPUTES,
    // Long enough that a batch of 50 is caught in flight, short enough for a test.
    fleetTimes: { installMs: 1500, stopMs: 500, startMs: 500, heartbeatMs: 1000 },
  });
  await startWorker();
}, 300_000);

afterAll(async () => {
  await killWorker();
  if (lab) await labDown(lab.stateDir);
  await client?.connection.close();
  if (!process.env.NOVA_UPGRADE_KEEP_TEST_STATE) rmSync(dir, { recursive: true, force: true });
});

run(
  `upgrades ${COMPUTES} virtual computes with 0 failed requests; a worker SIGKILLed mid-batch restarts no finished node`,
  async () => {
    const t0 = Date.now();
    const inv = loadInventory(lab!.inventoryPath);
    inv.compute = { ...inv.compute, batchSize: 50, parallel: 50 };
    // The lab's tempest runs against two API nodes; it says nothing about the computes.
    inv.tempest.enabled = false;
    const probe = new VipProbe({
      url: lab!.vipUrl,
      paths: ['/', '/v2.1/', '/v2.1/flavors'],
      ratePerSecond: 20,
      clients: 4,
      requestTimeoutMs: 10_000,
      maxDurationMs: 20 * 60_000,
    });
    probe.start();
    const h = await startUpgrade(client!, taskQueue, inv, { autoApprove: [...PHASES] });

    // Mid-batch: a batch is running and some of its nodes already run the new release, others
    // not yet (their nova-compute started on 31.0.0 is in their own events log).
    const virtual = lab!.nodes.filter((n) => n.virtual).map((n) => n.name);
    const restarted = () =>
      virtual.filter((n) =>
        labEvents(lab!.stateDir, n).some((e) => e.verb === 'start' && e.fields.version === inv.release.to),
      );
    const batches = computeBatches(inv);
    let killed: { batch: number; restartedBefore: string[] } | undefined;
    const deadline = Date.now() + 15 * 60_000;
    while (!killed && Date.now() < deadline) {
      const p: Progress | undefined = await h.query(progressQuery).catch(() => undefined);
      const running = p?.compute.batches?.find((b) => b.status === 'running' && b.index >= 2);
      if (running) {
        const done = restarted();
        const members = new Set(batches.find((b) => b.index === running.index)?.nodes);
        const batchDone = done.filter((n) => members.has(n)).length;
        if (batchDone > 0 && batchDone < running.nodes) {
          await killWorker();
          killed = { batch: running.index, restartedBefore: done };
          console.log(
            `SIGKILLed the worker in batch ${running.index} with ${batchDone} of its ${running.nodes} nodes on ${inv.release.to}`,
          );
          await sleep(500);
          await startWorker();
        }
      }
      if (!killed) await sleep(100);
    }
    expect(killed, 'no moment mid-batch was caught').toBeDefined();
    const result = (await h.result()) as UpgradeResult;
    const snap = await probe.stop();

    // Every virtual compute: the lab's first start, one stop, one install and one start on the
    // new release; a node restarted before the kill shows no second restart after it.
    const problems: string[] = [];
    for (const n of virtual) {
      const ev = labEvents(lab!.stateDir, n);
      const count = (verb: string, f?: (e: (typeof ev)[number]) => boolean) =>
        ev.filter((e) => e.verb === verb && (!f || f(e))).length;
      const starts = count('start');
      const stops = count('stop');
      const installs = count('install');
      const onNew = count('start', (e) => e.fields.version === inv.release.to);
      if (starts !== 2 || stops !== 1 || installs !== 1 || onNew !== 1)
        problems.push(`${n}: ${starts} starts (${onNew} on ${inv.release.to}), ${stops} stops, ${installs} installs`);
    }
    const p = await h.query(progressQuery);
    console.log(
      [
        `${COMPUTES} virtual computes upgraded in ${((Date.now() - t0) / 1000).toFixed(0)} s: ${result.status}`,
        `killed in batch ${killed!.batch} with ${killed!.restartedBefore.length} nodes already restarted`,
        `batches: ${p.compute.batches?.map((b) => `${b.index}:${b.done}/${b.nodes}`).join(' ')}`,
        `requests through the VIP: ${snap.requests}, failed: ${snap.failedRequests}`,
        `nodes restarted twice or not at all: ${problems.length}${problems.length ? ` (${problems.slice(0, 5).join('; ')})` : ''}`,
      ].join('\n'),
    );
    expect(result.status).toBe('completed');
    expect(snap.failedRequests, JSON.stringify(snap.firstFailures)).toBe(0);
    expect(snap.requests).toBeGreaterThan(100);
    expect(problems).toEqual([]);
    expect(p.compute.nodesDone).toBe(COMPUTES + 2);
    expect(p.compute.failedNodes ?? []).toEqual([]);
  },
  20 * 60_000,
);
