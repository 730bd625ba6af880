// The service-version preflight on the stand-in lab (127.0.80), through the CLI and a real
// worker: the read runs the default serviceVersions template over SSH (the lab's python3 answers
// the read from the stand-in cloud's records; the real-nova lab runs the same template with
// nova's own Python, test/realLabSlurp.test.ts). A down compute record older than the target's
// envelope stops the start naming its host, before anything changes; a down record that would
// keep the RPC pinned is deleted only after the operator answers delete-records.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Progress, UpgradeResult } from '../common/messages';
import { addOrphanService, labDown, labEvents, labUp, type LabInfo } from '../lab/lab';
import { readServices, updateServices } from '../lab/node/cloud';
import { LAB_SERVICE_VERSION } from '../lab/node/python';
import { NOVA_RELEASES } from '../inventory/releases';
import { startWorkerProcess, stopWorkerProcess } from '../worker/process';
import { sharedTemporal } from './temporalEnv';
import { runCli, type CliRun } from './helpers/cli';

const dir = mkdtempSync(join(tmpdir(), 'service-versions-lab-'));
const stateDir = join(dir, 'lab');
const taskQueue = `service-versions-lab-${randomUUID()}`;
let address: string;
let lab: LabInfo;

function cli(...args: string[]): Promise<CliRun> {
  return runCli([...args, '--address', address, '--task-queue', taskQueue], { NOVA_UPGRADE_OPERATOR: 'test-operator' });
}

interface View {
  running: boolean;
  progress?: Progress;
  result?: UpgradeResult;
}

async function status(id: string): Promise<View> {
  const s = await cli('status', id, '--json');
  expect(s.code, s.stderr).toBe(0);
  return JSON.parse(s.stdout) as View;
}

async function until(id: string, what: string, ok: (v: View) => boolean, timeoutMs = 120_000): Promise<View> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await status(id);
    if (ok(v)) return v;
    if (Date.now() > deadline)
      throw new Error(`${id}: no ${what} within ${timeoutMs} ms: ${JSON.stringify(v.progress)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const CHECKS = ['check-node-access', 'check-cells', 'check-service-versions'];

beforeAll(async () => {
  const t = sharedTemporal();
  address = t.address;
  await labDown(stateDir);
  lab = await labUp({ stateDir, subnet: '127.0.80' });
  const bundle = inject('workflowBundlePath');
  await startWorkerProcess({
    dir,
    address,
    namespace: t.namespace,
    taskQueue,
    ...(bundle ? { workflowBundlePath: bundle } : {}),
  });
}, 300_000);

afterAll(async () => {
  await stopWorkerProcess(dir);
  await labDown(stateDir);
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('the service-version preflight on the stand-in lab', () => {
  it("the lab's service versions are the release model's", () => {
    for (const r of NOVA_RELEASES) expect(LAB_SERVICE_VERSION[r.major], r.name).toBe(r.serviceVersion);
  });

  it('a down compute record older than the envelope stops the start, naming host and version; nothing changes', async () => {
    // 30.0.0 → 31.0.0: nova 31 starts beside computes down to 66 (Caracal); a Zed compute (64)
    // that died years ago still counts, as nova's own start check counts it.
    addOrphanService(stateDir, 'old-cmp1', 'nova-compute', new Date(Date.now() - 3 * 86_400_000), 64);
    const eventsBefore = labEvents(stateDir, 'controller').length;
    const id = 'sv-too-old';
    const started = await cli('start', '-i', lab.inventoryPath, '--workflow-id', id, '--auto-approve', 'all');
    expect(started.code, started.stderr).toBe(0);
    const v = await until(id, 'hold', (x) => x.progress?.status === 'held');
    const p = v.progress!;
    expect(p.pendingDecision).toMatchObject({ stepId: 'check-service-versions', choices: ['retry', 'abort'] });
    expect(p.pendingDecision!.error).toContain('nova-compute on old-cmp1 (cell1, id 5) is down (last seen ');
    expect(p.pendingDecision!.error).toContain(
      'but still counts at service version 64 (Zed), older than the 66 (Caracal) nova 31.0.0 accepts, so its conductors and nova-api would refuse to start',
    );
    expect(p.pendingDecision!.error).toContain('Nothing was changed.');
    // Only the read-only checks ran; no later step started, and nothing ran on the controller.
    for (const s of p.steps) {
      if (CHECKS.includes(s.id)) continue;
      expect({ id: s.id, status: s.status }).toEqual({ id: s.id, status: 'pending' });
    }
    expect(labEvents(stateDir, 'controller').slice(eventsBefore)).toEqual([]);
    const a = await cli('abort', id, '--reason', 'old-cmp1 is to be upgraded first');
    expect(a.code, a.stderr).toBe(0);
    const done = await until(id, 'result', (x) => !x.running);
    expect(done.result?.status).toBe('aborted');
  }, 300_000);

  it('a down record that would pin the compute RPC is deleted only after the operator answers delete-records', async () => {
    // The operator removed old-cmp1; another gone host's record is at 30.x's 67: inside 31's
    // envelope, but below its 68, so it would hold the compute RPC at 6.3 after the run.
    updateServices(stateDir, (rs) => rs.filter((r) => r.host !== 'old-cmp1'));
    const gone = addOrphanService(stateDir, 'gone-cmp', 'nova-compute', new Date(Date.now() - 86_400_000), 67);
    const id = 'sv-pinning';
    const started = await cli(
      'start',
      '-i',
      lab.inventoryPath,
      '--workflow-id',
      id,
      '--auto-approve',
      'before-upgrade',
    );
    expect(started.code, started.stderr).toBe(0);
    const held = await until(id, 'hold', (x) => x.progress?.status === 'held');
    expect(held.progress!.pendingDecision).toMatchObject({
      stepId: 'check-service-versions',
      choices: ['delete-records', 'skip', 'abort'],
    });
    expect(held.progress!.pendingDecision!.error).toContain(
      `nova-compute on gone-cmp (cell1, id 5) is down (last seen `,
    );
    expect(held.progress!.pendingDecision!.error).toContain(
      `and not in the inventory, so this run will not upgrade it, and its service version 67 would keep the compute RPC pinned at 6.3 instead of 6.4 after every other compute runs 31.0.0; delete the record ("openstack compute service delete ${gone.id}") if gone-cmp is gone`,
    );
    // Held, not deleted: the record is still there.
    expect(readServices(stateDir).some((r) => r.id === gone.id)).toBe(true);
    const d = await cli('delete-records', id);
    expect(d.code, d.stderr).toBe(0);
    const after = await until(
      id,
      'the preflight to pass',
      (x) => x.progress?.steps.find((s) => s.id === 'check-service-versions')?.status === 'succeeded',
    );
    expect(readServices(stateDir).some((r) => r.id === gone.id)).toBe(false);
    expect(after.progress!.warnings).toContain(
      `on test-operator's word, deleted nova-compute on gone-cmp (cell1, ${gone.id})`,
    );
    expect(after.progress!.steps.find((s) => s.id === 'check-service-versions')!.summary).toContain(
      'every counted compute is at 66 or newer',
    );
    const a = await cli('abort', id, '--reason', 'the test stops at the before-window gate');
    expect(a.code, a.stderr).toBe(0);
    expect((await until(id, 'result', (x) => !x.running)).result?.status).toBe('aborted');
  }, 300_000);
});
